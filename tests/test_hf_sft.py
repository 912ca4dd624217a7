"""GekoSFTTrainer: TRL's SFTTrainer on a gekodata plan, run for real on CPU at a tiny size.

A tiny random Llama (tests/support/hf_toy.py) and a word-level tokenizer built here (no download). The
main run shrinks its epochs (InfoBatch), reports every planned draw to the store, writes the
sampler into its checkpoints and resumes from one inside a shrunk epoch to the same end state.
"""

import math
import os

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from support.hf_checks import (
    assert_run_reported,
    assert_same_end_state,
    assert_shrinks_and_reports,
    copy_checkpoint_inside_shrunk_epoch,
)
from support.hf_toy import tiny_llama
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from trl import SFTConfig, SFTTrainer

from gekodata import BucketPolicy, InfoBatchPolicy, PruningDataset, WeightedBucketSampler
from gekodata.hf import SAMPLER_FILE, TRAINER_FILE, GekoSFTTrainer
from gekodata.hf.sft import PreparedRows
from gekodata.signals import causal_lm_signals

transformers.logging.set_verbosity_error()
WORDS = [f"w{i}" for i in range(40)]
N, EPOCHS, BS = 24, 3, 4


def tokenizer():
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def texts(n=N, seed=0, length=6):
    rng = np.random.default_rng(seed)
    return datasets.Dataset.from_list(
        [{"text": " ".join(WORDS[j] for j in rng.integers(0, 40, length))} for _ in range(n)]
    )


def sft_args(out, epochs=EPOCHS, **kw):
    kw.setdefault("per_device_train_batch_size", BS)
    kw.setdefault("learning_rate", 1e-3)
    kw.setdefault("max_length", 32)
    return SFTConfig(
        str(out),
        num_train_epochs=epochs,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        save_strategy=kw.pop("save_strategy", "no"),
        **kw,
    )


def build(out, raw=None, policy=None, epochs=EPOCHS, eval_dataset=None, **kw):
    ds = PruningDataset(texts() if raw is None else raw)
    sampler = WeightedBucketSampler(ds, policy, num_epochs=epochs, seed=0, shard=False)
    trainer = GekoSFTTrainer(
        model=tiny_llama(),
        args=sft_args(out, epochs, **kw),
        train_dataset=ds,
        eval_dataset=eval_dataset,
        processing_class=tokenizer(),
        sampler=sampler,
    )
    return trainer, sampler, ds


def first_batch(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    return batch


# ---------------------------------------------------------------------------- signals and loss
def test_signals_equal_causal_lm_signals_and_loss_equals_sfts(tmp_path):
    """The fused-head signals equal causal_lm_signals from full logits; the loss is SFT's own
    (unweighted: SFT's value as is; weighted at w = 1: rebuilt, equal)."""
    for policy in (BucketPolicy(), InfoBatchPolicy(anneal_fraction=0.0)):
        trainer, sampler, _ = build(tmp_path, policy=policy)
        batch = first_batch(trainer)
        assert ("weight" in batch) is policy.provides_loss_weights
        model = trainer.model
        with torch.no_grad():
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        ref = causal_lm_signals(logits, batch["labels"])
        reported = []
        original = sampler.report
        sampler.report = lambda loss, conf, correct, idx, **kw: reported.append(
            (loss, conf, correct, idx)
        )
        plain = {k: v for k, v in batch.items() if k not in ("idx", "weight")}
        for num_items in (None, torch.tensor(37.0)):
            torch.manual_seed(0)
            ours = trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items)
            torch.manual_seed(0)
            theirs = SFTTrainer.compute_loss(
                trainer, model, dict(plain), num_items_in_batch=num_items
            )
            assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
        sampler.report = original
        loss, conf, correct, idx = reported[0]
        torch.testing.assert_close(loss, ref[0].detach(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(conf, ref[1], rtol=1e-4, atol=1e-5)
        assert torch.equal(correct, ref[2]) and torch.equal(idx, batch["idx"])


# ---------------------------------------------------------------------------- a real run, resumed
def shrinking_run(out, resume_from=None):
    trainer, sampler, ds = build(
        out,
        policy=InfoBatchPolicy(anneal_fraction=0.0),
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        shuffle_dataset=True,
        eval_dataset=texts(8, seed=1),
        eval_strategy="epoch",
    )
    trainer.train(resume_from_checkpoint=resume_from)
    return trainer, sampler, ds


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    return (out, *shrinking_run(out))


def test_sft_plan_shrinks_and_reports_reach_the_store(reference_run):
    out, trainer, sampler, ds = reference_run
    planned = assert_shrinks_and_reports(sampler, N)
    assert (sampler.store.visits > 0).all() and np.isfinite(sampler.store.loss).all()
    assert trainer.state.global_step == sum(math.ceil(p / BS) for p in planned)
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(
        0.0, abs=1e-12
    )  # decayed to its end
    assert any(
        "mean_token_accuracy" in h for h in trainer.state.log_history
    )  # SFT's own metrics still logged
    assert (
        sum("eval_loss" in h for h in trainer.state.log_history) == EPOCHS
    )  # evaluation runs as SFT's
    # SFT shuffled its prepared rows; ds[i] is still raw example i, tokenized
    assert isinstance(ds.dataset, PreparedRows) and not np.array_equal(
        ds.dataset.positions, np.arange(N)
    )
    tok, raw = tokenizer(), texts()
    for i in (0, 7, N - 1):
        assert (
            ds[i]["input_ids"] == tok(raw[i]["text"] + "<eos>")["input_ids"] and ds[i]["idx"] == i
        )
    assert ds.__getitems__([7, 0]) == [ds[7], ds[0]]  # the batched read (one Arrow read) agrees
    ckpts = list(out.glob("checkpoint-*"))
    assert ckpts and all((c / SAMPLER_FILE).exists() and (c / TRAINER_FILE).exists() for c in ckpts)


def test_sft_run_logs_epoch_records_and_writes_the_report(reference_run):
    out, trainer, sampler, _ = reference_run
    assert_run_reported(trainer, sampler, out)


def test_sft_resume_inside_a_shrunk_epoch_restores_the_sampler(reference_run, tmp_path):
    out, ref_trainer, ref_sampler, _ = reference_run
    ckpt, _ = copy_checkpoint_inside_shrunk_epoch(ref_sampler, out, tmp_path, N, BS, every=2)
    trainer, sampler, _ = shrinking_run(tmp_path, resume_from=str(ckpt))
    assert_same_end_state(ref_trainer, ref_sampler, trainer, sampler)


# ---------------------------------------------------------------------------- clear errors
def test_sft_errors_users_will_hit(tmp_path):
    with pytest.raises(ValueError, match="packing=True / padding_free=True"):
        build(tmp_path, packing=True)
    with pytest.raises(ValueError, match="packing=True / padding_free=True"):
        build(tmp_path, padding_free=True, max_length=None)
    raw = texts()
    with pytest.raises(TypeError, match=r"pass gekodata\.PruningDataset"):
        GekoSFTTrainer(
            model=tiny_llama(),
            args=sft_args(tmp_path),
            train_dataset=raw,
            processing_class=tokenizer(),
            sampler=WeightedBucketSampler(PruningDataset(raw), num_epochs=EPOCHS, shard=False),
        )
    tensors = PruningDataset(torch.utils.data.TensorDataset(torch.zeros(4, 2)))
    with pytest.raises(TypeError, match=r"must wrap a datasets\.Dataset"):
        GekoSFTTrainer(
            model=tiny_llama(),
            args=sft_args(tmp_path),
            train_dataset=tensors,
            processing_class=tokenizer(),
            sampler=WeightedBucketSampler(tensors, num_epochs=EPOCHS, shard=False),
        )
    with pytest.raises(ValueError, match="signals must be None or 'causal_lm'"):
        GekoSFTTrainer(
            model=tiny_llama(),
            args=sft_args(tmp_path),
            train_dataset=PruningDataset(raw),
            processing_class=tokenizer(),
            sampler=WeightedBucketSampler(PruningDataset(raw), num_epochs=3),
            signals="classification",
        )
    with pytest.raises(ValueError, match="loss_type='dft'"):
        build(tmp_path, policy=InfoBatchPolicy(), loss_type="dft")
    # a prompt that fills max_length leaves its completion without targets: SFT drops the example
    pairs = datasets.Dataset.from_list(
        [{"prompt": "w1 w2", "completion": " w3"}] * 3
        + [{"prompt": " ".join(["w4"] * 40), "completion": " w5"}]
    )
    with pytest.raises(ValueError, match=r"SFTTrainer dropped 1 of 4 examples .* indices \[3\]"):
        build(tmp_path, raw=pairs, max_length=16)

    def only_model_inputs(features):  # a custom collator that drops "idx": not wrapped, refused
        ids = torch.tensor([f["input_ids"][:4] for f in features])
        return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}

    ds = PruningDataset(raw)
    trainer = GekoSFTTrainer(
        model=tiny_llama(),
        args=sft_args(tmp_path),
        train_dataset=ds,
        processing_class=tokenizer(),
        data_collator=only_model_inputs,
        sampler=WeightedBucketSampler(ds, num_epochs=EPOCHS, shard=False),
    )
    with pytest.raises(ValueError, match="drops the index column 'idx'"):
        trainer.train()
