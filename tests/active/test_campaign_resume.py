"""A simulation killed with SIGKILL mid-campaign resumes from the store at the round it was in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rsir.active.pool import Pairs
from rsir.active.store import Store

ROUNDS, INITIAL, PER_ROUND = 6, 10, 6

CHILD = f"""
import sys, time
import numpy as np
from rsir.active.campaign import CampaignLoop, CampaignSettings, create_or_resume_campaign
from rsir.active.learner import PairTraining
from rsir.active.oracle import LabelOracle
from rsir.active.store import Store

rng = np.random.default_rng(0)
cls = np.repeat(np.arange(5), 8)
x = rng.normal(0, 1, (5, 12))[cls] + rng.normal(0, 0.8, (40, 12))
x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
store = Store(sys.argv[1])
settings = CampaignSettings(strategy="anneal-mgue", seed=0, initial={INITIAL}, per_round={PER_ROUND},
                            rounds={ROUNDS}, n_neighbours=4, n_random=50,
                            train=PairTraining(steps=5, hidden=16, n_anchors=32))
cid = create_or_resume_campaign(store, "resume", settings, [f"i{{k}}" for k in range(40)])
loop = CampaignLoop(store, cid, x, evaluate=lambda head: time.sleep(0.5) or {{"ok": 1.0}})
print("start", loop.current_round, len(loop.history()), flush=True)
loop.run(LabelOracle([[f"c{{c}}"] for c in cls]))
print("done", flush=True)
"""


def _trained(db: Path) -> int:
    if not db.exists():
        return 0
    store = Store(db)
    try:
        camp = store.campaign_by_name("resume")
        return 0 if camp is None else sum(r.trained_at is not None for r in store.rounds(camp.id))
    finally:
        store.dispose()


def test_killed_simulation_resumes_at_its_round(tmp_path):
    script, db = tmp_path / "child.py", tmp_path / "campaign.db"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, str(script), str(db)], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _trained(db) < 2 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = _trained(db)
    assert 2 <= before <= ROUNDS, f"kill landed outside the campaign ({before} rounds trained)"

    rerun = subprocess.run([sys.executable, str(script), str(db)], env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    start = rerun.stdout.split()
    assert start[0] == "start" and int(start[2]) >= before  # picked up the stored rounds, not from zero

    store = Store(db)
    camp = store.campaign_by_name("resume")
    rounds = store.rounds(camp.id)
    assert camp.status == "done"
    assert [r.number for r in rounds] == list(range(ROUNDS + 1))
    assert all(r.trained_at is not None for r in rounds)
    assert [r.n_labelled for r in rounds] == [INITIAL + PER_ROUND * k for k in range(ROUNDS + 1)]
    i, j = store.all_pairs(camp.id)
    assert len(i) == INITIAL + PER_ROUND * ROUNDS
    assert len(np.unique(Pairs(i, j).keys())) == len(i)
    store.dispose()
