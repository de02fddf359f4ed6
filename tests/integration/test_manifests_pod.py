"""The container contract: a pod's command, as the manifests write it, runs a streamlet.

Takes the container args, environment, ConfigMap and Secret of a generated Deployment,
lays the mounted files out as the pod sees them (a directory standing in for
/etc/streamlets, the example directory for /app), runs ``flow`` with exactly those args
against a real broker and probes the ``/healthz`` and ``/readyz`` endpoints the probes
use; SIGTERM then stops it with exit 0, as a pod's termination would.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from click.testing import CliRunner

from runner.cli import cli
from runner.k8s.options import CONFIG_DIR
from runner.kafka.broker import EmbeddedBroker, free_port
from tests.integration.conftest import listening_addresses

ROOT = Path(__file__).resolve().parents[2]
SENSORS = ROOT / "examples" / "sensors"
FLOW = str(Path(sys.executable).with_name("flow"))


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_the_generated_container_command_runs_the_streamlet(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    out = tmp_path / "deploy"
    result = CliRunner().invoke(
        cli,
        [
            "deploy",
            str(SENSORS / "blueprint.yaml"),
            "--image",
            "i:1",
            "--bootstrap",
            kafka_broker.bootstrap,
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    deployment = yaml.safe_load((out / "deployment-threshold.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config_map = yaml.safe_load((out / "configmap.yaml").read_text())
    secret = yaml.safe_load((out / "secret.yaml").read_text())

    mounted = tmp_path / "etc-streamlets"  # what the projected volume shows the pod
    mounted.mkdir()
    (mounted / "blueprint.yaml").write_text(config_map["data"]["blueprint.yaml"])
    secret_text = base64.b64decode(secret["data"]["secret-config.yaml"]).decode()
    (mounted / "secret-config.yaml").write_text(secret_text)

    port = free_port()
    args = [a.replace(CONFIG_DIR, str(mounted)) for a in container["args"]]
    args[args.index("--metrics-port") + 1] = str(port)
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"] if "value" in e}}
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(SENSORS)  # the image's /app
    proc = subprocess.Popen(
        [FLOW, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            health = _status(f"http://127.0.0.1:{port}/healthz")
            if health == 200:
                break
            time.sleep(0.2)
        assert health == 200, proc.stderr.read().decode() if proc.poll() is not None else health
        # The pod's address, not loopback: the kubelet's probes come from outside.
        assert listening_addresses(port) == {"0.0.0.0"}
        assert _status(f"http://127.0.0.1:{port}/readyz") in (200, 503)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        assert b"threshold" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
