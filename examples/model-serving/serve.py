"""Train two iris classifiers and serve them with MLServer, for the model-serving example.

    .venv/bin/python examples/model-serving/serve.py [--port 8080]

Version ``v1`` is a logistic regression, ``v2`` a shallow decision tree, both trained on the
iris data set that ships with scikit-learn. MLServer (with its scikit-learn runtime) is
installed on first use into its own virtualenv under ``.cache/model-servers/``, as the
integration tests do, and runs until Ctrl-C. ``--embedded`` only writes the model files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def train(folder: Path) -> dict[str, Path]:
    """Fit the two model versions and save them with joblib."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    folder.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    paths = {"v1": folder / "iris-v1.joblib", "v2": folder / "iris-v2.joblib"}
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), paths["v1"])
    joblib.dump(DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y), paths["v2"])
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--embedded", action="store_true", help="only write the model files")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from mlserver_local import MLServer, Model, port_taken, serve

    if not args.embedded and port_taken(args.port):
        print(
            f"error: port {args.port} on 127.0.0.1 is taken (another serve.py still running?); "
            "stop it, or pass another --port",
            file=sys.stderr,
        )
        return 1
    paths = train(HERE / "models")
    print(f"models: {', '.join(str(p) for p in paths.values())}")
    if args.embedded:
        return 0
    models = [Model("iris", path, version) for version, path in paths.items()]
    server = MLServer(models, HERE / "models" / "server", port=args.port)
    print("starting MLServer (the first start installs it; about a minute)...")
    return serve(
        server, f"MLServer serves iris v1 and v2 at {server.url} (V2 protocol); Ctrl-C stops it"
    )


if __name__ == "__main__":
    sys.exit(main())
