"""Live tracking against a real ``mlflow server`` (``mcr tracking-server``): epochs reach the
server while a run trains, the tracking step completes the same run, and a server that is down
or goes away mid-run loses nothing and duplicates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcr import tracking_server
from mcr.evaluation import evaluate_run
from mcr.tracking import LiveRun, track_runs
from mcr.tracking_server import free_port, rest
from mcr.training import train_run
from tests.conftest import tiny_run_config

EPOCHS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A tracking server on a free port with its own sqlite store, stopped by PID at the end."""
    root = tmp_path_factory.mktemp("server")
    state = tracking_server.start(port=free_port(), root=root)
    yield root, state
    if tracking_server.read_state(root / tracking_server.STATE_FILE) is not None:
        tracking_server.stop(root=root)
    assert not tracking_server.alive(state.pid)


def steps(uri: str, run_id: str, key: str) -> list[int]:
    history = rest(uri, "metrics/get-history", run_id=run_id, metric_key=key, max_results=1000)
    return sorted(m["step"] for m in history.get("metrics", []))


def cell_runs(uri: str, experiment: str) -> list[dict]:
    found = rest(uri, "experiments/get-by-name", experiment_name=experiment)["experiment"]
    return rest(uri, "runs/search", {"experiment_ids": [found["experiment_id"]]}).get("runs", [])


def train_live(dataset, uri: str, run_dir: Path, name: str, **kwargs) -> LiveRun:
    live = LiveRun(uri, name, run_dir, **kwargs)
    train_run(dataset, "joint", tiny_run_config(EPOCHS), 0, run_dir,
              callbacks=[live.log_epoch], on_start=live.start)  # fmt: skip
    return live


def track(dataset, run_dir: Path, name: str, out: Path) -> dict:
    evaluate_run(run_dir, dataset, out_path=run_dir / "metrics.json")
    return track_runs(name, [run_dir], out.parent, out)


def test_epochs_arrive_live_and_the_tracking_step_completes_the_same_run(
    server, tiny_synthetic, tmp_path, monkeypatch
):
    _, state = server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", state.uri)
    run_dir = tmp_path / "joint" / "seed0"
    live = train_live(tiny_synthetic, state.uri, run_dir, "live_a")
    assert live.run_id and LiveRun.recorded_id(run_dir, state.uri) == live.run_id
    # before any tracking step: params and every epoch are on the server, the run still running
    run = rest(state.uri, "runs/get", run_id=live.run_id)["run"]
    assert run["info"]["status"] == "RUNNING"
    assert {p["key"]: p["value"] for p in run["data"]["params"]}["method"] == "joint"
    assert steps(state.uri, live.run_id, "epoch/val_accuracy") == list(range(EPOCHS))
    logged = track(tiny_synthetic, run_dir, "live_a", tmp_path / "a.json")
    assert logged == {"live_a/joint/seed0": live.run_id}  # completed in place
    run = rest(state.uri, "runs/get", run_id=live.run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert "final/test_accuracy" in {m["key"] for m in run["data"]["metrics"]}
    assert steps(state.uri, live.run_id, "epoch/train_loss") == list(
        range(EPOCHS)
    )  # no duplicates
    # idempotent: tracking again, or rerunning the finished job, adds nothing
    assert track(tiny_synthetic, run_dir, "live_a", tmp_path / "b.json") == logged
    train_live(tiny_synthetic, state.uri, run_dir, "live_a")
    assert [r["info"]["run_id"] for r in cell_runs(state.uri, "live_a")] == [live.run_id]
    assert steps(state.uri, live.run_id, "final/test_accuracy") == [0]


def test_a_server_that_goes_away_mid_run_loses_nothing(server, tiny_synthetic, tmp_path,
                                                       monkeypatch, capsys):  # fmt: skip
    root, state = server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", state.uri)
    run_dir = tmp_path / "joint" / "seed0"
    live = LiveRun(state.uri, "live_b", run_dir, retry_after_s=0.0)
    outage = {"epoch": 1}

    def kill_after(record: dict) -> None:  # the server dies once epoch 1 is logged
        if int(record["epoch"]) == outage["epoch"]:
            tracking_server.stop(root=root)

    train_run(tiny_synthetic, "joint", tiny_run_config(EPOCHS), 0, run_dir,
              callbacks=[live.log_epoch, kill_after], on_start=live.start)  # fmt: skip
    assert "live MLflow logging to" in capsys.readouterr().out  # said once, training went on
    assert len((run_dir / "history.csv").read_text().splitlines()) == EPOCHS + 1
    assert live.logged_through == outage["epoch"]
    restarted = tracking_server.start(port=int(state.uri.rsplit(":", 1)[1]), root=root)
    logged = track(tiny_synthetic, run_dir, "live_b", tmp_path / "a.json")
    assert logged == {"live_b/joint/seed0": live.run_id}
    for key in ("epoch/train_loss", "epoch/val_accuracy", "epoch/lr"):
        assert steps(restarted.uri, live.run_id, key) == list(range(EPOCHS)), key


def test_a_server_down_from_the_start_is_said_once_and_tracked_later(
    server, tiny_synthetic, tmp_path, monkeypatch, capsys
):
    _, state = server
    dead = f"http://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "joint" / "seed0"
    live = train_live(tiny_synthetic, dead, run_dir, "live_c")
    out = capsys.readouterr().out
    assert out.count("live MLflow logging to") == 1 and live.run_id is None
    assert not (run_dir / LiveRun.FILE).exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", state.uri)
    logged = track(tiny_synthetic, run_dir, "live_c", tmp_path / "a.json")
    (run_id,) = logged.values()
    assert run_id and steps(state.uri, run_id, "epoch/train_loss") == list(range(EPOCHS))


def test_server_commands_refuse_a_second_server_and_name_what_is_wrong(server, tmp_path):
    root, state = server
    port = int(state.uri.rsplit(":", 1)[1])
    with pytest.raises(tracking_server.TrackingServerError, match="already running"):
        tracking_server.start(port=port, root=root)
    with pytest.raises(tracking_server.TrackingServerError, match="already serves"):
        tracking_server.start(port=port, root=tmp_path)  # another checkout, the same port
    with pytest.raises(tracking_server.TrackingServerError, match="no tracking server was"):
        tracking_server.stop(root=tmp_path)
    assert tracking_server.reachable(state.uri) is None
    assert "no tracking server answers" in tracking_server.reachable(
        f"http://127.0.0.1:{free_port()}"
    )


def test_a_run_retrained_while_the_server_is_down_gets_a_run_of_its_own(
    server, tiny_synthetic, tmp_path, monkeypatch
):
    """Other settings, no server: the old MLflow run must not receive the new results."""
    _, state = server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", state.uri)
    run_dir = tmp_path / "joint" / "seed0"
    first = train_live(tiny_synthetic, state.uri, run_dir, "live_d").run_id
    assert track(tiny_synthetic, run_dir, "live_d", tmp_path / "a.json") == {
        "live_d/joint/seed0": first
    }
    dead = LiveRun(f"http://127.0.0.1:{free_port()}", "live_d", run_dir)
    # restart_if_changed: the pipeline retrains on a params change
    train_run(tiny_synthetic, "joint", tiny_run_config(EPOCHS + 1), 0, run_dir,
              restart_if_changed=True, callbacks=[dead.log_epoch],
              on_start=dead.start)  # fmt: skip
    assert not (run_dir / LiveRun.FILE).exists()  # the record of the old training is dropped
    (second,) = track(tiny_synthetic, run_dir, "live_d", tmp_path / "b.json").values()
    assert second != first
    assert steps(state.uri, second, "epoch/train_loss") == list(range(EPOCHS + 1))
    assert steps(state.uri, first, "epoch/train_loss") == list(range(EPOCHS))  # untouched
    assert [r["info"]["run_id"] for r in cell_runs(state.uri, "live_d")] == [second]
