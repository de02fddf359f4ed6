"""Write the batch-scoring data set and model; optionally serve the model with MLServer.

    .venv/bin/python examples/batch-scoring/prepare.py [--records 20000] [--serve --port 8081]

The data set is scikit-learn's handwritten digits (1797 8x8 images, shipped with it),
repeated to ``--records`` rows in ``data/digits.jsonl``; the model is a logistic
regression fitted on it, in ``models/digits.joblib``. ``--serve`` then serves it with
MLServer (installed on first use under ``.cache/model-servers/``) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def prepare(records: int, folder: Path = HERE) -> Path:
    """Write ``data/digits.jsonl`` and ``models/digits.joblib`` under ``folder``; returns the
    model's path."""
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    with (folder / "data" / "digits.jsonl").open("w", encoding="utf-8") as out:
        for i in range(records):
            pixels = [float(v) for v in x[i % len(x)]]
            out.write(json.dumps({"id": i, "pixels": pixels}, separators=(",", ":")) + "\n")
    model = folder / "models" / "digits.joblib"
    joblib.dump(LogisticRegression(max_iter=2000).fit(x, y), model)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--serve", action="store_true", help="serve the model with MLServer")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from mlserver_local import MLServer, Model, port_taken, serve

    if args.serve and port_taken(args.port):
        print(
            f"error: port {args.port} on 127.0.0.1 is taken (another model server still "
            "running?); stop it, or pass another --port",
            file=sys.stderr,
        )
        return 1
    model = prepare(args.records)
    print(f"wrote {args.records} records to data/digits.jsonl and the model to {model}")
    if not args.serve:
        return 0
    server = MLServer([Model("digits", model, "1")], HERE / "models" / "server", port=args.port)
    return serve(server, f"MLServer serves 'digits' at {server.url}; Ctrl-C stops it")


if __name__ == "__main__":
    sys.exit(main())
