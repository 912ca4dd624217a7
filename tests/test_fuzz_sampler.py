"""Hypothesis stateful fuzz of `WeightedBucketSampler`: reports, sync points, iteration, resume.

One machine drives a sampler (the *subject*) through a random mix of good and bad ``report``
calls, ``flush``, ``set_epoch`` (next, same, earlier, past ``num_epochs``), iteration with a
live iterator, ``state_dict``/``load_state_dict``, ``save``/``load`` round trips, rollbacks to an
older checkpoint and checkpoint restores into a fresh sampler (which may replace the subject).
It checks the subject against

* a *reference sampler* with identical settings that sees only the accepted report calls and
  the same sync points and iteration: store columns bitwise equal, plans, epochs, positions and
  pending rows equal;
* a *pure model*: a bare ``GEKOStateStore`` that the test itself updates once per sync window
  with the accepted rows converted as documented (float32 values, missing conf = exp(-loss),
  missing correct = conf > 0.5, pred -1 = unknown), plus the per-epoch classification replayed
  with ``policy.classify`` + ``set_buckets`` + ``set_pruned`` and the plan replayed with
  ``plan_epoch``; it also predicts the position in the stream (``state_dict()["yielded"]``).

Every refused call must raise ``ValueError`` and change nothing (pending rows, store, plan,
epoch, position). The test counts executed rule invocations and asserts at least 10,000.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gekodata import Bucket, BucketPolicy, GEKOStateStore, PruningDataset, WeightedBucketSampler
from gekodata.planning.epoch_plan import plan_epoch

STEPS = {"rules": 0}
SEEN = set()  # situations the run reached (asserted at the end: the fuzz must not be vacuous)
_END = object()
# every refusal of report()'s arrays (gekodata.store.validation): a missing idx, an index out of
# range, or an array with a wrong shape, length, dtype or value
REPORT_REFUSAL = (
    r"^(report\(\) needs idx|idx -?\d+ \(entry \d+\) out of range|"
    r"(idx|loss|conf|correct|pred) (must|has \d+ entries but idx has \d+))"
)

# ---------------------------------------------------------------------------- value strategies
LOSS = st.one_of(
    st.sampled_from([0.0, 5e-324, 1e-45, 1e-30, 1e-8, 1e-3, 1e30, 2e31]),
    st.floats(0.0, 0.05),
    st.floats(0.0, 20.0),
)
FRACTION = st.one_of(st.sampled_from([0.0, 1.0, 1.0 + 1e-9, 0.5, 0.99, 1e-45]), st.floats(0.0, 1.0))
FLOAT_KINDS = ["list", "np64", "np32", "t64", "t32", "t16", "tbf16", "t32grad"]
INT_KINDS = ["list", "np64", "np32", "npu8", "t64", "t32"]
_FMAX = {"t16": 6.0e4, "tbf16": 1.0e38}


def encode_floats(values, kind):
    """``values`` (python floats) in container ``kind``."""
    if kind in _FMAX:
        values = [min(v, _FMAX[kind]) for v in values]
    if kind == "list":
        return list(values)
    if kind == "np64":
        return np.array(values, dtype=np.float64)
    if kind == "np32":
        with np.errstate(over="ignore"):
            return np.array(values, dtype=np.float32)
    dtype = {
        "t64": torch.float64,
        "t32": torch.float32,
        "t16": torch.float16,
        "tbf16": torch.bfloat16,
        "t32grad": torch.float32,
    }[kind]
    tensor = torch.tensor(values, dtype=dtype) if values else torch.empty(0, dtype=dtype)
    return tensor.requires_grad_() if kind == "t32grad" else tensor


def encode_ints(values, kind):
    if kind == "list" and not values:
        # an empty Python list becomes a float64 array, refused as a float idx (finding 2 in the
        # report); an empty batch comes as an int tensor or array in practice
        return np.array([], dtype=np.int64)
    if kind == "list":
        return list(values)
    if kind in ("np64", "np32", "npu8"):
        return np.array(values, dtype={"np64": np.int64, "np32": np.int32, "npu8": np.uint8}[kind])
    return torch.tensor(values, dtype=torch.int64 if kind == "t64" else torch.int32)


def as_f32(x):
    """The documented conversion of one value array: float32 (fp16/bf16 widened exactly)."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float32).numpy().copy()
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float64).astype(np.float32)


def as_i64(x):
    if isinstance(x, torch.Tensor):
        return x.numpy().astype(np.int64)
    return np.asarray(x).astype(np.int64)


def store_snapshot(store):
    return ({k: v.copy() for k, v in store.columns.items()}, store.loss_scale, store.total_updates)


def assert_stores_equal(a, b, where):
    assert set(a.columns) == set(b.columns), where
    for name, col in a.columns.items():
        other = b.columns[name]
        assert col.dtype == other.dtype, f"{where}: {name} dtype"
        assert col.tobytes() == other.tobytes(), f"{where}: column {name} differs:\n{col}\n{other}"
    assert a.loss_scale == b.loss_scale, where
    assert a.total_updates == b.total_updates, where


def assert_snapshot_equal(snap, store, where):
    cols, loss_scale, total = snap
    assert set(cols) == set(store.columns), where
    for name, col in cols.items():
        assert col.tobytes() == store.columns[name].tobytes(), f"{where}: column {name} changed"
    assert (loss_scale, total) == (store.loss_scale, store.total_updates), where


# ---------------------------------------------------------------------------- the machine
class SamplerMachine(RuleBasedStateMachine):
    """Settings of one variant; subclasses below override them."""

    NOISE_GUARD = False
    PRUNE_AFTER = 2
    SYNC_EVERY = None
    EXTRA = {}
    PURE = True  # the pure model covers the store only without the forgetting audit

    def __init__(self):
        super().__init__()
        # tmpfs where there is one: save() fsyncs every file, which costs milliseconds on a disk
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.tmp = tempfile.mkdtemp(prefix="gekofuzz-", dir=shm)
        self.files = 0

    # ------------------------------------------------------------------ construction
    def make_sampler(self):
        ds = PruningDataset(list(range(self.n)), prune_frozen_after=self.PRUNE_AFTER)
        return WeightedBucketSampler(
            ds,
            BucketPolicy(noise_guard=self.NOISE_GUARD),
            num_epochs=self.num_epochs,
            seed=self.seed,
            sync_every=self.SYNC_EVERY,
            **self.EXTRA,
        )

    def path(self):
        self.files += 1
        return os.path.join(self.tmp, f"s{self.files}.safetensors")

    @initialize(n=st.integers(8, 40), num_epochs=st.integers(3, 5), seed=st.integers(0, 3))
    def setup(self, n, num_epochs, seed):
        self.n, self.num_epochs, self.seed = n, num_epochs, seed
        self.sampler = self.make_sampler()
        self.ref = self.make_sampler()
        self.policy = BucketPolicy(noise_guard=self.NOISE_GUARD)
        # pure model
        self.store = GEKOStateStore(n)
        self.window = []  # converted accepted rows of the open sync window
        self.calls = 0  # accepted calls in the open window (sync_every)
        self.epoch = 0
        self.planned = None
        self.classified = -1
        self.model_plan = None
        self.pos = 0  # the subject's position in the current stream
        self.resume = None  # a restored position waiting for the next iter()
        self.it = self.ref_it = None  # live iterators (subject, reference)
        self.saved_state = None  # (state_dict, plan copy) for rewinds
        self.ckpt = None  # (subject file, reference file, model snapshot) for rollbacks
        # first use plans epoch 0 on both samplers (and the model)
        self.model_need_plan(0)
        assert self.sampler.global_plan.tolist() == self.ref.global_plan.tolist()

    def teardown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ the pure model
    def model_fold(self):
        if self.window:
            idx, loss, conf, correct, pred = (np.concatenate(c) for c in zip(*self.window))
            self.store.update(idx, loss, conf, correct, pred if (pred != -1).any() else None)
        self.window, self.calls = [], 0

    def model_need_plan(self, epoch):
        """What ``_ensure_plan(epoch)`` must do: fold, classify once per new epoch, plan."""
        if self.planned == epoch:
            return False
        self.model_fold()
        if epoch > self.classified:
            codes = self.policy.classify(self.store)
            self.store.set_buckets(codes, codes == Bucket.FREEZE)
            if self.PRUNE_AFTER:
                self.store.set_pruned(self.store.frozen_streak >= self.PRUNE_AFTER)
            self.classified = epoch
        self.planned = epoch
        self.model_plan = plan_epoch(
            self.store,
            self.policy,
            epoch=epoch,
            num_epochs=self.num_epochs,
            seed=self.seed,
            **self.plan_kwargs(),
        ).indices
        self.pos, self.resume, self.it, self.ref_it = 0, None, None, None
        return True

    def plan_kwargs(self):
        kw = {}
        if "budget" in self.EXTRA:
            kw["budget"] = self.EXTRA["budget"]
        if self.EXTRA.get("unbiased"):
            kw["unbiased_floor"] = self.EXTRA.get("unbiased_floor", 0.1)
        return kw

    def model_accept(self, loss, conf, correct, idx, pred):
        idx64 = as_i64(idx)
        loss32 = as_f32(loss)
        conf32 = as_f32(conf)
        if conf32 is None:
            conf32 = np.exp(-loss32)
        correct32 = as_f32(correct)
        if correct32 is None:
            correct32 = (conf32 > 0.5).astype(np.float32)
        pred64 = np.full(len(idx64), -1, dtype=np.int64) if pred is None else as_i64(pred)
        self.window.append((idx64, loss32, conf32, correct32, pred64))
        self.calls += 1
        if self.SYNC_EVERY is not None and self.calls >= self.SYNC_EVERY:
            self.model_fold()

    def expected_plan(self):
        return (self.model_plan if self.PURE else self.ref.global_plan).tolist()

    @property
    def model_pending(self):
        return sum(len(w[0]) for w in self.window)

    def model_sync(self):
        self.model_need_plan(self.epoch)
        self.model_fold()

    # ------------------------------------------------------------------ report generation
    def draw_good(self, data):
        """A valid report call: (loss, conf, correct, idx, pred) in random containers."""
        b = data.draw(st.integers(0, 12), label="rows")
        idx = data.draw(st.lists(st.integers(0, self.n - 1), min_size=b, max_size=b), label="idx")
        if data.draw(st.booleans(), label="easy"):  # learnt samples: they freeze, then prune
            loss = data.draw(st.lists(st.floats(0.0, 0.02), min_size=b, max_size=b), label="loss")
        else:
            loss = data.draw(st.lists(LOSS, min_size=b, max_size=b), label="loss")
        conf = correct = pred = None
        if data.draw(st.booleans(), label="has_conf"):
            conf = data.draw(st.lists(FRACTION, min_size=b, max_size=b), label="conf")
        mode = data.draw(st.sampled_from(["none", "bool", "float"]), label="correct_mode")
        if mode == "bool":
            correct = data.draw(st.lists(st.booleans(), min_size=b, max_size=b), label="correct")
        elif mode == "float":
            correct = data.draw(st.lists(FRACTION, min_size=b, max_size=b), label="correct")
        if data.draw(st.booleans(), label="has_pred"):
            pred = data.draw(
                st.lists(st.one_of(st.integers(-1, 4), st.just(2**31 - 1)), min_size=b, max_size=b),
                label="pred",
            )
        kinds = data.draw(
            st.tuples(
                st.sampled_from(INT_KINDS),
                st.sampled_from(FLOAT_KINDS),
                st.sampled_from(FLOAT_KINDS),
                st.sampled_from(FLOAT_KINDS + ["boolnp", "boolt"]),
                st.sampled_from(["list", "np64", "t64"]),
            ),
            label="kinds",
        )
        call = dict(
            idx=encode_ints(idx, kinds[0]),
            loss=encode_floats(loss, kinds[1]),
            conf=None if conf is None else encode_floats(conf, kinds[2]),
            correct=None,
            pred=None,
        )
        if correct is not None:
            if kinds[3] == "boolnp":
                call["correct"] = np.array(correct, dtype=float) > 0.5
            elif kinds[3] == "boolt":
                call["correct"] = torch.tensor(correct, dtype=torch.float64).reshape(-1) > 0.5
            else:
                call["correct"] = encode_floats([float(c) for c in correct], kinds[3])
        if pred is not None:
            call["pred"] = (
                encode_ints(pred, kinds[4])
                if kinds[4] != "t64"
                else torch.tensor(pred, dtype=torch.int64)
            )
        return call

    def report_both(self, call):
        self.sampler.report(
            call["loss"], call["conf"], call["correct"], call["idx"], pred=call["pred"]
        )
        self.ref.report(call["loss"], call["conf"], call["correct"], call["idx"], pred=call["pred"])
        self.model_accept(call["loss"], call["conf"], call["correct"], call["idx"], call["pred"])

    # ------------------------------------------------------------------ rules: reports
    @rule(data=st.data())
    def good_report(self, data):
        STEPS["rules"] += 1
        self.report_both(self.draw_good(data))

    @rule(
        data=st.data(),
        bad=st.sampled_from(
            [
                "nan",
                "inf",
                "-inf",
                "f64_over",
                "f64_under",
                "neg",
                "neg_tiny",
                "idx_n",
                "idx_-1",
                "idx_big",
                "idx_float",
                "idx_float_list",
                "idx_float_t",
                "idx_bool",
                "idx_str",
                "idx_2d",
                "loss_2d",
                "idx_0d",
                "loss_longer",
                "conf_shorter",
                "conf_hi",
                "conf_hi32",
                "conf_neg",
                "conf_nan",
                "correct_hi",
                "correct_neg",
                "pred_float",
                "pred_low",
                "pred_bool",
                "pred_big",
                "idx_none",
                "loss_str",
            ]
        ),
    )
    def bad_report(self, data, bad):
        STEPS["rules"] += 1
        call = self.draw_good(data)
        b = len(call["idx"])
        needs_row = bad in (
            "nan",
            "inf",
            "-inf",
            "f64_over",
            "f64_under",
            "neg",
            "neg_tiny",
            "idx_n",
            "idx_-1",
            "idx_big",
            "conf_hi",
            "conf_hi32",
            "conf_neg",
            "conf_nan",
            "correct_hi",
            "correct_neg",
            "pred_low",
            "pred_big",
            "conf_shorter",
            # a zero-row call skips the pred dtype check (finding 3 in the report: harmless)
            "pred_float",
            "pred_bool",
            "loss_str",
        )
        if needs_row and b == 0:
            call = dict(
                call, idx=np.array([0]), loss=np.array([0.5]), conf=None, correct=None, pred=None
            )
            b = 1
        j = data.draw(st.integers(0, b - 1), label="row") if b else 0
        idx_list = as_i64(call["idx"]).tolist()
        loss64 = as_f32(call["loss"]).astype(np.float64)

        def with_loss(value, dtype=np.float64):
            arr = loss64.copy()
            arr[j] = value
            return arr.astype(dtype) if dtype != "t32" else torch.tensor(arr, dtype=torch.float32)

        def with_idx(value):
            arr = np.array(idx_list, dtype=np.int64)
            arr[j] = value
            return arr

        def fraction_with(value):
            arr = np.full(b, 0.5)
            arr[j] = value
            return arr

        if bad == "nan":
            call["loss"] = with_loss(np.nan, data.draw(st.sampled_from([np.float64, "t32"])))
        elif bad == "inf":
            call["loss"] = with_loss(np.inf, data.draw(st.sampled_from([np.float64, "t32"])))
        elif bad == "-inf":
            call["loss"] = with_loss(-np.inf)
        elif bad == "f64_over":  # finite in float64, inf in float32
            call["loss"] = with_loss(
                data.draw(st.sampled_from([1e39, 3.5e38, 1e300, 3e38, 2.1e31]))
            )
        elif bad == "f64_under":
            call["loss"] = with_loss(data.draw(st.sampled_from([-1e39, -1e300])))
        elif bad == "neg":
            call["loss"] = with_loss(data.draw(st.sampled_from([-0.5, -1.0, -20.0])))
        elif bad == "neg_tiny":  # still negative in float32
            call["loss"] = with_loss(-1e-30, data.draw(st.sampled_from([np.float64, np.float32])))
        elif bad == "idx_n":
            call["idx"] = with_idx(self.n)
        elif bad == "idx_-1":
            call["idx"] = with_idx(-1)
        elif bad == "idx_big":
            call["idx"] = with_idx(2**40)
        elif bad == "idx_float":
            call["idx"] = np.array(idx_list, dtype=np.float64)
        elif bad == "idx_float_list":
            call["idx"] = [float(i) for i in idx_list] if idx_list else [0.5]
            if not idx_list:
                call["loss"] = [0.5]
        elif bad == "idx_float_t":
            call["idx"] = torch.tensor(idx_list, dtype=torch.float32)
        elif bad == "idx_bool":
            call["idx"] = np.array([i % 2 == 1 for i in idx_list], dtype=bool)
        elif bad == "idx_str":
            call["idx"] = [str(i) for i in idx_list] if idx_list else ["0"]
            if not idx_list:
                call["loss"] = [0.5]
        elif bad == "idx_2d":
            call["idx"] = np.array(idx_list, dtype=np.int64).reshape(-1, 1)
        elif bad == "loss_2d":
            call["loss"] = loss64.reshape(-1, 1)
        elif bad == "idx_0d":
            call = dict(
                call,
                idx=np.int64(1) if data.draw(st.booleans()) else np.array(1),
                loss=np.array(0.5),
                conf=None,
                correct=None,
                pred=None,
            )
        elif bad == "loss_longer":
            call["loss"] = np.append(loss64, 0.5)
        elif bad == "conf_shorter":
            call["conf"] = np.full(b - 1, 0.5)
        elif bad == "conf_hi":
            call["conf"] = fraction_with(data.draw(st.sampled_from([1.5, 2.0, 1e30])))
        elif bad == "conf_hi32":  # 1 + 1e-6 stays > 1 in float32
            call["conf"] = fraction_with(1.0 + 1e-6)
        elif bad == "conf_neg":
            call["conf"] = fraction_with(data.draw(st.sampled_from([-1e-6, -0.5, -1e-30])))
        elif bad == "conf_nan":
            call["conf"] = fraction_with(np.nan)
        elif bad == "correct_hi":
            call["correct"] = fraction_with(data.draw(st.sampled_from([1.0 + 1e-6, 2.0, np.inf])))
        elif bad == "correct_neg":
            call["correct"] = fraction_with(data.draw(st.sampled_from([-1.0, -1e-6, np.nan])))
        elif bad == "pred_float":
            call["pred"] = (
                np.zeros(b, dtype=np.float64) if data.draw(st.booleans()) else torch.zeros(b)
            )
        elif bad == "pred_low":
            arr = np.zeros(b, dtype=np.int64)
            arr[j] = data.draw(st.sampled_from([-2, -100, -(2**40)]))
            call["pred"] = arr
        elif bad == "pred_bool":
            call["pred"] = np.ones(b, dtype=bool)
        elif bad == "pred_big":
            arr = np.zeros(b, dtype=np.int64)
            arr[j] = 2**31
            call["pred"] = arr
        elif bad == "idx_none":
            call["idx"] = None
        elif bad == "loss_str":
            call["loss"] = ["a"] * b if data.draw(st.booleans()) else np.array(["0.5"] * b)

        plan_before = self.sampler.global_plan.copy()
        snap = store_snapshot(self.sampler.store)
        pending, state = self.sampler.pending_reports, self.sampler.state_dict()
        with pytest.raises(ValueError, match=REPORT_REFUSAL):
            self.sampler.report(
                call["loss"], call["conf"], call["correct"], call["idx"], pred=call["pred"]
            )
        # invariant 2: a refused call changes nothing
        assert self.sampler.pending_reports == pending, bad
        assert_snapshot_equal(snap, self.sampler.store, f"refused {bad}")
        assert self.sampler.global_plan.tolist() == plan_before.tolist(), bad
        assert self.sampler.state_dict() == state, bad

    # ------------------------------------------------------------------ rules: sync points and epochs
    @rule()
    def flush(self):
        STEPS["rules"] += 1
        self.sampler.flush()
        self.ref.flush()
        self.model_sync()

    @rule(how=st.sampled_from(["next", "next", "same", "earlier", "skip"]))
    def set_epoch(self, how):
        """Next epoch, the same epoch (no-op), an earlier one (refused: epochs only move forward),
        or two ahead; epochs past num_epochs are allowed with a warning (the curriculum's last
        phase)."""
        STEPS["rules"] += 1
        target = {
            "next": self.epoch + 1,
            "same": self.epoch,
            "earlier": max(self.epoch - 1, 0),
            "skip": self.epoch + 2,
        }[how]
        target = min(target, self.num_epochs + 2)
        if target < self.epoch:  # epochs only move forward: refused, nothing changes
            for sampler in (self.sampler, self.ref):
                with pytest.raises(ValueError, match="epochs only move forward"):
                    sampler.set_epoch(target)
            return
        with warnings.catch_warnings():  # past num_epochs, or a fresh sampler skipping epoch 0
            warnings.simplefilter("ignore", UserWarning)
            self.sampler.set_epoch(target)
            self.ref.set_epoch(target)
        self.model_need_plan(target)
        self.epoch = target

    # ------------------------------------------------------------------ rules: iteration and positions
    @rule(k=st.integers(0, 15), new_iter=st.booleans())
    def iterate(self, k, new_iter):
        STEPS["rules"] += 1
        if new_iter or self.it is None or self.resume is not None:
            self.it, self.ref_it = iter(self.sampler), iter(self.ref)
            self.pos, self.resume = (self.resume or 0), None
        got = [next(self.it, _END) for _ in range(k)]
        ref_got = [next(self.ref_it, _END) for _ in range(k)]
        plan = self.expected_plan()
        expected = plan[self.pos : self.pos + k]
        expected += [_END] * (k - len(expected))
        assert got == expected, (got, expected)
        assert ref_got == expected
        self.pos = min(self.pos + k, len(plan))
        assert self.sampler.state_dict()["yielded"] == self.pos

    @rule()
    def remember_position(self):
        STEPS["rules"] += 1
        self.saved_state = (
            self.sampler.state_dict(),
            self.ref.state_dict(),
            self.sampler.plan.copy(),
            self.planned,
        )

    @precondition(lambda self: self.saved_state is not None)
    @rule()
    def rewind_position(self):
        """``load_state_dict`` of an earlier ``state_dict`` on the same sampler: resumes there when
        the plan is the same, ignores a completed earlier epoch, refuses an unfinished earlier one
        or another plan for the same epoch."""
        STEPS["rules"] += 1
        state, ref_state, plan_then, planned_then = self.saved_state
        if state["epoch"] > self.planned:
            return  # would plan a later epoch from here: covered by set_epoch
        if state["epoch"] < self.planned:
            expect = "ignored" if state["yielded"] == state["length"] else "refused"
        else:
            # N <= 40: the fingerprint (32 indices from each end) covers the whole stream
            expect = "resumed" if np.array_equal(plan_then, self.sampler.plan) else "refused"
        refusal = (
            "sampler state is mid-way through epoch"
            if state["epoch"] < self.planned
            else "sampler state belongs to another plan for epoch"
        )
        for sampler, st_ in ((self.sampler, state), (self.ref, ref_state)):
            if expect == "refused":
                with pytest.raises(ValueError, match=refusal):
                    sampler.load_state_dict(st_)
            else:
                sampler.load_state_dict(st_)
        SEEN.add(f"rewind {expect}")
        if expect == "resumed":
            self.resume = state["yielded"]
        assert self.sampler.state_dict()["yielded"] == (
            self.resume if self.resume is not None else self.pos
        )

    @rule()
    def rewind_across_epoch_boundary(self):
        """Finish the stream, remember the position, start the next epoch, rewind to it: the
        position of a completed earlier epoch is ignored (a loader restoring its finished
        iterator after ``set_epoch``). Made of the rules above, so every model stays in step;
        a rule of its own so that the run reaches this case whatever else it draws."""
        self.iterate(len(self.expected_plan()) + 1, new_iter=True)
        self.remember_position()
        self.set_epoch("next")
        self.rewind_position()

    @rule(save_first=st.booleans(), k=st.integers(0, 45), swap=st.booleans())
    def checkpoint_restore(self, save_first, k, swap):
        """The usual checkpoint (save + state_dict at one moment) restored into a fresh sampler:
        it continues the same stream with a bitwise-equal store; it may replace the subject."""
        STEPS["rules"] += 1
        p, ref_p = self.path(), self.path()
        if save_first:
            self.sampler.save(p)
            state = self.sampler.state_dict()
        else:
            state = self.sampler.state_dict()
            self.sampler.save(p)
        self.ref.save(ref_p)  # a save folds nothing: the pending rows travel in the file
        fresh = self.make_sampler()
        fresh.load(p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fresh.load_state_dict(state)
        assert_stores_equal(fresh.store, self.sampler.store, "restored")
        assert fresh.global_plan.tolist() == self.sampler.global_plan.tolist()
        assert fresh.epoch == self.sampler.epoch
        assert fresh.pending_reports == self.sampler.pending_reports == self.model_pending
        assert fresh.state_dict() == self.sampler.state_dict()
        # the original continues with its live iterator (or a new iter() at a pending position)
        if self.it is None or self.resume is not None:
            self.it, self.ref_it = iter(self.sampler), iter(self.ref)
            self.pos, self.resume = (self.resume or 0), None
        fresh_it = iter(fresh)
        mine = [next(self.it, _END) for _ in range(k)]
        theirs = [next(fresh_it, _END) for _ in range(k)]
        ref_got = [next(self.ref_it, _END) for _ in range(k)]
        assert theirs == mine == ref_got, (mine, theirs)
        expected = self.expected_plan()[self.pos : self.pos + k]
        assert mine == expected + [_END] * (k - len(expected))
        self.pos = min(self.pos + k, len(self.expected_plan()))
        assert fresh.state_dict() == self.sampler.state_dict()
        assert_stores_equal(fresh.store, self.sampler.store, "restored, after iterating")
        if swap:
            SEEN.add("swapped")
            self.sampler, self.it = fresh, fresh_it

    @rule()
    def save_load_roundtrip(self):
        """save then load on the same sampler: same store, plan and epoch; the position restarts
        at 0 (load installs the saved plan as a new plan)."""
        STEPS["rules"] += 1
        p, ref_p = self.path(), self.path()
        self.sampler.save(p)
        self.ref.save(ref_p)
        before = store_snapshot(self.sampler.store)
        plan = self.sampler.global_plan.copy()
        self.sampler.load(p)
        self.ref.load(ref_p)
        assert_snapshot_equal(before, self.sampler.store, "save/load round trip")
        assert self.sampler.global_plan.tolist() == plan.tolist()
        self.pos, self.resume, self.it, self.ref_it = 0, None, None, None

    @rule()
    def take_checkpoint(self):
        STEPS["rules"] += 1
        p, ref_p = self.path(), self.path()
        self.sampler.save(p)
        self.ref.save(ref_p)
        model = (
            copy.deepcopy(self.store),
            self.epoch,
            self.planned,
            self.classified,
            self.model_plan.copy(),
            list(self.window),
            self.calls,
        )
        self.ckpt = (p, ref_p, model)

    @precondition(lambda self: self.ckpt is not None)
    @rule()
    def rollback(self):
        """load() an older checkpoint: the state goes back, pending reports to the checkpoint's."""
        STEPS["rules"] += 1
        p, ref_p, model = self.ckpt
        SEEN.add("rollback")
        self.sampler.load(p)
        self.ref.load(ref_p)
        store, self.epoch, self.planned, self.classified, plan, window, calls = model
        self.store, self.model_plan = copy.deepcopy(store), plan.copy()
        self.window, self.calls = list(window), calls
        self.pos, self.resume, self.it, self.ref_it = 0, None, None, None

    # ------------------------------------------------------------------ invariants
    @invariant()
    def matches_reference_sampler(self):
        s, r = self.sampler, self.ref
        assert_stores_equal(s.store, r.store, "subject vs reference sampler")
        assert s.global_plan.tolist() == r.global_plan.tolist()
        assert s.epoch == r.epoch == self.epoch
        assert s.pending_reports == r.pending_reports == self.model_pending
        assert s.state_dict() == r.state_dict()
        if s.unbiased:
            everything = np.arange(self.n)
            assert s.loss_weights(everything).tolist() == r.loss_weights(everything).tolist()

    @invariant()
    def matches_pure_model(self):
        if self.PURE:
            assert_stores_equal(self.sampler.store, self.store, "subject vs pure store")
            assert self.sampler.global_plan.tolist() == self.model_plan.tolist()

    @invariant()
    def length_and_position(self):
        state = self.sampler.state_dict()
        codes = set(self.sampler.store.bucket.tolist())
        SEEN.update(f"bucket {Bucket(c).name}" for c in codes)
        if self.sampler.store.num_pruned:
            SEEN.add("pruned")
        if 0 < state["yielded"] == state["length"]:
            SEEN.add("stream exhausted")
        assert len(self.sampler) == len(self.sampler.plan) == state["length"]
        assert 0 <= state["yielded"] <= len(self.sampler)
        assert state["yielded"] == (self.resume if self.resume is not None else self.pos)
        assert state["epoch"] == self.epoch


class NoiseGuardMachine(SamplerMachine):
    NOISE_GUARD = True
    SYNC_EVERY = 3

    @rule()
    def mislabeled_sample(self):
        """Three sync windows in which every sample is reported, all right but sample 0, which
        is confidently wrong with the same predicted label each time, each window followed by
        the next epoch: the guard's SUSPECT case, made of the rules above (so every model stays
        in step) and a rule of its own so that the run reaches it whatever else it draws."""
        idx = np.arange(self.n, dtype=np.int64)
        wrong = idx == 0
        call = dict(
            idx=idx,
            loss=np.where(wrong, 3.0, 0.01),
            conf=np.where(wrong, 0.05, 0.99),
            correct=np.where(wrong, 0.0, 1.0),
            pred=np.where(wrong, 1, 0).astype(np.int64),
        )
        for _ in range(3):
            STEPS["rules"] += 1
            self.report_both(call)
            self.flush()
            self.set_epoch("next")


class AuditMachine(SamplerMachine):
    """Forgetting audit, unbiased loss weights and an explicit budget: checked against the
    reference sampler (the pure model does not replay the audit's restarts, so only its sync
    windows, epochs and positions count here; the expected stream is the reference's)."""

    PURE = False
    PRUNE_AFTER = 1
    EXTRA = {"audit_fraction": 0.5, "audit_margin": 0.1, "unbiased": True, "budget": 0.75}


VARIANTS = [(SamplerMachine, 130), (NoiseGuardMachine, 130), (AuditMachine, 70)]


def test_fuzz_sampler_state_machine():
    STEPS["rules"] = 0
    SEEN.clear()
    for machine, examples in VARIANTS:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=45,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
                print_blob=False,
            ),
        )
    assert STEPS["rules"] >= 10_000, STEPS
    wanted = {
        "rewind resumed",
        "rewind refused",
        "rewind ignored",
        "swapped",
        "pruned",
        "stream exhausted",
        *(f"bucket {b.name}" for b in Bucket),
    }
    assert wanted <= SEEN, sorted(wanted - SEEN)
