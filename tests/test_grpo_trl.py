"""GekoGRPOTrainer: a real tiny trl GRPOTrainer run (1-layer Llama saved to disk, CPU) rolling out the
prompts gekodata plans, with the one-line reward wrapper reporting; resume, evaluation, empty epochs
and the refusals."""

import os

import numpy as np
import pytest

pytest.importorskip("transformers", minversion="5.0")
trl = pytest.importorskip("trl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from support.grpo_toy import char_tokenizer, prompt_dataset, save_tiny_model  # noqa: E402
from support.hf_checks import assert_run_reported  # noqa: E402

from gekodata import Bucket, PromptPolicy, WeightedBucketSampler  # noqa: E402
from gekodata.hf import GekoGRPOTrainer, GroupedPlanSampler, with_prompt_index  # noqa: E402
from gekodata.hf import TRAINER_FILE  # noqa: E402
from gekodata.hf.grpo import SAMPLER_FILE, check_supported  # noqa: E402
from gekodata.prompts import reward_reporter  # noqa: E402

N, G, EPOCHS, LR = 18, 4, 4, 1e-3


def outcome_reward(completions, idx, **kwargs):
    """idx % 3 == 0: always right; 1: always wrong; 2: alternating along the batch (a mixed group)."""
    return [1.0 if i % 3 == 0 else 0.0 if i % 3 == 1 else float(j % 2) for j, i in enumerate(idx)]


class Recorder:
    def __init__(self):
        self.calls, self.steps, self.plans, self.buckets, self.epoch_starts = [], [], [], [], []

    def reward(self, completions, idx, **kwargs):
        self.calls.append(list(idx))
        return outcome_reward(completions, idx, **kwargs)


def make_trainer(
    tmp_path,
    model_dir,
    rec=None,
    *,
    policy=None,
    reward=None,
    reward_fn=None,
    sampler_kw=None,
    dataset=None,
    **args,
):
    from transformers import TrainerCallback
    from trl import GRPOConfig

    ds = dataset if dataset is not None else with_prompt_index(prompt_dataset(N))
    sampler = WeightedBucketSampler(
        ds,
        policy or PromptPolicy(group_size=G, freeze_after=2),
        num_epochs=EPOCHS,
        seed=0,
        shard=False,
        **(sampler_kw or {}),
    )
    config = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        num_generations=G,
        max_completion_length=3,
        num_train_epochs=EPOCHS,
        learning_rate=LR,
        lr_scheduler_type="linear",
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        bf16=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    config.update(args)
    reward_fn = reward_fn or (rec.reward if rec else outcome_reward)
    reward_funcs = reward if reward is not None else [reward_reporter(sampler, reward_fn)]
    trainer = GekoGRPOTrainer(
        model=model_dir,
        args=GRPOConfig(**config),
        train_dataset=ds,
        sampler=sampler,
        reward_funcs=reward_funcs,
        processing_class=char_tokenizer(),
    )
    if rec is not None:

        class Spy(TrainerCallback):
            def on_epoch_begin(self, args, state, control, **kw):
                rec.epoch_starts.append(len(rec.calls))
                rec.plans.append(np.array(sampler.global_plan))
                rec.buckets.append(np.array(sampler.store.bucket))

            def on_step_end(self, args, state, control, **kw):
                rec.steps.append(
                    (state.global_step, state.epoch, trainer.lr_scheduler.get_last_lr()[0])
                )

        trainer.add_callback(Spy())
    return trainer, sampler


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def run(tmp_path_factory, model_dir):
    tmp = tmp_path_factory.mktemp("grpo")
    rec = Recorder()
    trainer, sampler = make_trainer(tmp, model_dir, rec, save_strategy="steps", save_steps=4)
    trainer.train()
    return trainer, sampler, rec, tmp


def test_rollouts_follow_the_plan_in_groups(run):
    trainer, sampler, rec, _ = run
    for call in rec.calls:  # each prompt's G completions are consecutive in one generation batch
        assert len(call) == 8 and all(len(set(call[k : k + G])) == 1 for k in range(0, 8, G))
    bounds = rec.epoch_starts + [len(rec.calls)]
    assert len(rec.plans) == EPOCHS
    for e in range(EPOCHS):
        rolled = [i for call in rec.calls[bounds[e] : bounds[e + 1]] for i in call[::G]]
        plan = rec.plans[e]
        assert sorted(rolled[: len(plan)]) == sorted(plan.tolist()) and set(rolled) == set(
            plan.tolist()
        )
        assert len(rolled) == -(-len(plan) // 2) * 2  # padded to whole chunks of 2 prompts
        frozen = np.flatnonzero(rec.buckets[e] == Bucket.FREEZE)
        assert not set(frozen.tolist()) & set(rolled)
    sizes = [len(p) for p in rec.plans]
    assert (
        sizes[0] == N and sizes[-1] < sizes[0] // 2
    )  # epochs shrink as prompts are skipped or frozen


def test_the_wrapper_reported_every_completion(run):
    trainer, sampler, rec, _ = run
    completions = sum(len(c) for c in rec.calls)
    assert trainer.gekodata_reporter.reported_rows == completions
    assert sampler.pending_reports == 0  # train() ends with a sync point
    np.testing.assert_array_equal(
        sampler.store.visits, np.bincount(np.concatenate(rec.calls), minlength=N)
    )
    report = sampler.efficiency_report()
    assert report.trained_passes == completions // G  # a pass is a group
    store = sampler.store
    seen = store.visits > 0
    kind = np.arange(N) % 3
    assert (store.group_streak[seen & (kind == 0)] > 0).all() and (
        store.group_streak[seen & (kind == 1)] < 0
    ).all()
    assert (store.group_streak[seen & (kind == 2)] == 0).all()


def test_steps_lr_and_epochs_follow_progress_through_the_plan(run):
    trainer, sampler, rec, _ = run
    bounds = rec.epoch_starts + [len(rec.calls)]
    updates = [
        bounds[e + 1] - bounds[e] for e in range(EPOCHS)
    ]  # one generation batch per optimizer step here
    assert trainer.state.global_step == sum(updates) == len(rec.steps)
    step = 0
    for e, n in enumerate(updates):
        for k in range(1, n + 1):
            gs, epoch, lr = rec.steps[step]
            assert gs == step + 1 and epoch == pytest.approx(e + k / n)
            horizon = EPOCHS * (
                N // 2
            )  # Trainer's T: the full first epoch's steps, times the epochs
            assert lr == pytest.approx(
                LR * (1 - round(horizon * (e + k / n) / EPOCHS) / horizon), abs=1e-12
            )
            step += 1
    assert rec.steps[-1][2] == 0.0 and trainer.state.epoch == EPOCHS


def test_grpo_run_logs_epoch_records_and_writes_the_report(run):
    trainer, sampler, _, tmp = run
    assert_run_reported(trainer, sampler, tmp / "out")


def test_checkpoints_hold_the_sampler_and_resume_exactly(run, model_dir, tmp_path):
    trainer, sampler, rec, tmp = run
    checkpoints = sorted(
        (tmp / "out").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])
    )
    assert checkpoints and all(
        (c / SAMPLER_FILE).is_file() and (c / TRAINER_FILE).is_file() for c in checkpoints
    )
    mid = next(
        c for c in checkpoints if int(c.name.split("-")[1]) == 12
    )  # epoch 1 of 0..3, part-way
    rec2 = Recorder()
    resumed, sampler2 = make_trainer(
        tmp_path, model_dir, rec2, save_strategy="no", output_dir=str(tmp / "out")
    )
    resumed.train(resume_from_checkpoint=str(mid))
    assert rec2.steps == rec.steps[12:]
    for name in ("visits", "correct_ema", "group_streak", "flags", "frozen_streak"):
        np.testing.assert_array_equal(sampler2.store.columns[name], sampler.store.columns[name])
    assert [r.planned for r in sampler2.efficiency_report().epochs] == [
        r.planned for r in sampler.efficiency_report().epochs
    ]
    (tmp_path / "bare").mkdir()
    for f in mid.iterdir():
        if f.name not in (SAMPLER_FILE, TRAINER_FILE):
            (tmp_path / "bare" / f.name).symlink_to(f)
    again, _ = make_trainer(tmp_path, model_dir, save_strategy="no")
    with pytest.raises(FileNotFoundError, match="not written by a gekodata trainer"):
        again.train(resume_from_checkpoint=str(tmp_path / "bare"))


def test_evaluate_does_not_report(model_dir, tmp_path):
    eval_ds = prompt_dataset(4)
    eval_ds = eval_ds.add_column("idx", [0, 1, 2, 3])  # eval prompts that would alias training rows
    trainer, sampler = make_trainer(tmp_path, model_dir, per_device_eval_batch_size=8)
    trainer.eval_dataset = eval_ds
    metrics = trainer.evaluate()
    assert (
        "eval_reward" in metrics
        and sampler.pending_reports == 0
        and trainer.gekodata_reporter.reported_rows == 0
    )


def test_empty_epochs_do_not_end_training(model_dir, tmp_path):
    from transformers import TrainerCallback

    def solved(completions, idx, **kwargs):
        return [1.0] * len(idx)

    trainer, sampler = make_trainer(
        tmp_path, model_dir, policy=PromptPolicy(group_size=G, freeze_after=1), reward_fn=solved
    )
    begun = []

    class Count(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kw):
            begun.append(len(sampler.global_plan))

    trainer.add_callback(Count())
    trainer.train()
    assert begun == [N, 0, 0, 0]  # all frozen after epoch 0 (no audit): the later epochs are empty
    assert trainer.state.global_step == N // 2 and trainer.state.epoch == EPOCHS


def test_grouped_plan_sampler_layout():
    sampler = WeightedBucketSampler(
        range(5), PromptPolicy(group_size=2), num_epochs=2, seed=0, shard=False
    )
    grouped = GroupedPlanSampler(sampler, num_generations=2, prompts_per_chunk=2, repeat_count=3)
    plan = sampler.global_plan.tolist()
    assert grouped.num_chunks == 3 and grouped.padded == 1 and len(grouped) == 3 * 2 * 2 * 3
    stream = list(grouped)
    chunks = [plan[0:2], plan[2:4], [plan[4], plan[0]]]
    expected = [i for chunk in chunks for _ in range(3) for i in chunk for _ in range(2)]
    assert stream == expected
    with pytest.raises(ValueError, match="double sharding"):
        GroupedPlanSampler(
            WeightedBucketSampler(range(4), num_epochs=1, rank=0, world_size=2, standalone=True),
            num_generations=2,
            prompts_per_chunk=2,
        )
    with pytest.raises(ValueError, match="num_generations must be >= 1"):
        GroupedPlanSampler(sampler, num_generations=0, prompts_per_chunk=2)


def test_refusals(model_dir, tmp_path):
    check_supported()  # the installed releases are the tested ones

    class Renamed:  # a release whose private hook changed its parameters
        def _get_train_sampler(self, train_dataset=None):
            pass

        def _init_training_state(
            self,
            max_steps,
            num_update_steps_per_epoch,
            num_train_epochs,
            resume_from_checkpoint,
            trial,
        ):
            pass

    with pytest.raises(RuntimeError, match="_get_train_sampler"):
        check_supported(Renamed)
    from gekodata.hf import compat

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(compat.TESTED, "trl", ">=9.0")
        mp.delenv(compat.ALLOW_UNTESTED, raising=False)
        with pytest.raises(RuntimeError, match="tested with"):
            check_supported()
        mp.setenv(compat.ALLOW_UNTESTED, "1")
        with pytest.warns(UserWarning, match="tested with"):
            check_supported()
    cases = [
        (dict(max_steps=5), ValueError, "max_steps"),
        (dict(num_train_epochs=2), ValueError, "num_train_epochs"),
        (dict(remove_unused_columns=True), ValueError, "remove_unused_columns"),
        (dict(policy=PromptPolicy(group_size=8)), ValueError, "group_size=8"),
        (dict(reward=[outcome_reward]), ValueError, "0 reward functions report"),
        (
            dict(dataset=prompt_dataset(N).add_column("idx", list(range(N))[::-1])),
            ValueError,
            "position",
        ),
        (dict(dataset=prompt_dataset(N)), ValueError, "no column 'idx'"),
        (dict(gradient_accumulation_steps=2, steps_per_generation=3), ValueError, "multiple of"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            make_trainer(tmp_path, model_dir, **kwargs)
    ds = with_prompt_index(prompt_dataset(N))
    with pytest.raises(ValueError, match="already has a column"):
        with_prompt_index(ds)


def test_two_processes_judge_split_groups_whole(tmp_path):
    """Every group is split across the two processes; a group whose halves are each unanimous but
    differ is informative (not zero-variance), and both ranks hold the same store."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from support.torchrun_util import run_torchrun

    here = Path(__file__).resolve().parent
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")]),
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(here / "support" / "grpo_distributed_run.py"),
        "--out",
        str(tmp_path),
    ]
    try:
        proc = run_torchrun(cmd, env, timeout=400)
    except subprocess.TimeoutExpired as exc:  # pragma: no cover
        pytest.fail(f"torchrun timed out: {exc}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert (
        ranks[0]["store_digest"] == ranks[1]["store_digest"]
        and ranks[0]["plans"] == ranks[1]["plans"]
    )
    for call in ranks[0]["calls"] + ranks[1]["calls"]:
        assert len(call) == 2 and call[0] == call[1]  # half a group per process
    rows = np.bincount(np.concatenate([np.concatenate(r["calls"]) for r in ranks]), minlength=9)
    assert (
        rows.tolist() == ranks[0]["visits"] and (rows % 4 == 0).all()
    )  # whole groups, all reported once
    streak = np.array(ranks[0]["group_streak"])
    seen = rows > 0
    kind = np.arange(9) % 3
    assert (streak[seen & (kind == 2)] == 0).all() and (
        seen & (kind == 2)
    ).any()  # judged whole: mixed
    assert (streak[seen & (kind == 0)] > 0).all() and (streak[seen & (kind == 1)] < 0).all()
    plans = ranks[0]["plans"]
    assert len(plans["1"]) < len(plans["0"]) == 9
    assert ranks[0]["trained_passes"] == sum(len(p) for p in plans.values())


def test_save_points_do_not_change_selection(model_dir, tmp_path):
    """GekoGRPOTrainer saves the sampler at every checkpoint: a run that saves at every step, and
    fresh trainers resumed from several of its checkpoints (early, mid-epoch, at an epoch's last
    step, late), plan and store bitwise as a run that never saves; the adaptive policy's run state
    included."""
    import json

    def policy():
        return PromptPolicy(group_size=G, freeze_after=2, recheck=2.0, tags=np.arange(N) // 6)

    def final(sampler):
        return sampler.store.state_dict()["columns"], sampler.policy.state_arrays()

    def same(a, b, where):
        for part_a, part_b in zip(a, b):
            assert part_a.keys() == part_b.keys()
            for name in part_a:
                np.testing.assert_array_equal(part_a[name], part_b[name], err_msg=f"{name} {where}")

    ref_rec = Recorder()
    ref, ref_sampler = make_trainer(tmp_path / "ref", model_dir, ref_rec, policy=policy())
    ref.train()
    reference = final(ref_sampler)
    rec = Recorder()
    saving, sampler = make_trainer(
        tmp_path / "all", model_dir, rec, policy=policy(), save_strategy="steps", save_steps=1
    )
    saving.train()
    same(reference, final(sampler), "(saving every step)")
    assert [p.tolist() for p in rec.plans] == [p.tolist() for p in ref_rec.plans]
    checkpoints = {
        int(c.name.split("-")[1]): c for c in (tmp_path / "all" / "out").glob("checkpoint-*")
    }
    steps = sorted(checkpoints)
    records = {s: json.loads((checkpoints[s] / TRAINER_FILE).read_text()) for s in steps}
    ends = [s for s in steps if records[s]["updates_done"] == records[s]["updates_in_epoch"]]
    mids = [s for s in steps if 0 < records[s]["updates_done"] < records[s]["updates_in_epoch"]]
    points = sorted({steps[0], mids[len(mids) // 2], ends[1], steps[-2]})
    for step in points:
        rec2 = Recorder()
        resumed, sampler2 = make_trainer(
            tmp_path / f"r{step}", model_dir, rec2, policy=policy(),
            output_dir=str(tmp_path / "all" / "out"),
        )
        resumed.train(resume_from_checkpoint=str(checkpoints[step]))
        same(reference, final(sampler2), f"(resumed at step {step})")
        first = len(ref_rec.plans) - len(rec2.plans)
        assert [p.tolist() for p in rec2.plans] == [p.tolist() for p in ref_rec.plans[first:]]
        assert rec2.steps == ref_rec.steps[step:]


def test_a_budget_fixes_every_epochs_steps_and_batch_shape(model_dir, tmp_path):
    """``budget=K``: every epoch rolls out exactly K planned prompts (skipped prompts' draws go
    to the others), so TRL's step count and generation-batch shape stay those of the first
    epoch, as with plain GRPOTrainer on a K-prompt dataset."""
    rec = Recorder()
    budget = 10
    trainer, sampler = make_trainer(tmp_path, model_dir, rec, sampler_kw={"budget": budget})
    trainer.train()
    assert [len(plan) for plan in rec.plans] == [budget] * EPOCHS
    assert all(len(call) == 8 for call in rec.calls)  # full generation batches: 2 prompts x G
    assert trainer.state.global_step == EPOCHS * budget // 2 == len(rec.steps)
    assert (sampler.store.group_streak != 0).any()  # zero-variance prompts were down-weighted
