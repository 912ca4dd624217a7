"""Resuming a GekoTrainer run mid-epoch under another batch layout would retrain or skip samples
(Trainer resumes by optimizer steps): refused with the fix. The same layout resumes exactly."""
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from support.hf_toy import ToyText, tiny_bert  # noqa: E402
from transformers import TrainingArguments  # noqa: E402

from gekodata import PruningDataset, WeightedBucketSampler  # noqa: E402
from gekodata.hf import GekoTrainer  # noqa: E402


def trainer(out, batch, accumulation=1, **kw):
    ds = PruningDataset(ToyText(32))
    sampler = WeightedBucketSampler(ds, num_epochs=2, seed=0, shard=False)
    args = TrainingArguments(
        str(out), num_train_epochs=2, per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation, report_to=[], disable_tqdm=True, use_cpu=True,
        save_strategy="steps", save_steps=2, **kw,
    )
    return GekoTrainer(model=tiny_bert(), args=args, train_dataset=ds, sampler=sampler), sampler


def test_mid_epoch_resume_under_another_batch_layout_is_refused(tmp_path):
    first, _ = trainer(tmp_path, batch=8)
    first.train()  # 4 steps per epoch: checkpoint-2 is mid-epoch 0
    mid = tmp_path / "checkpoint-2"
    for batch, accumulation, changed in ((4, 1, "per_device_train_batch_size 8 -> 4"),
                                         (8, 2, "gradient_accumulation_steps 1 -> 2")):
        again, _ = trainer(tmp_path, batch=batch, accumulation=accumulation)
        with pytest.raises(ValueError, match=changed):
            again.train(resume_from_checkpoint=str(mid))
    same, sampler = trainer(tmp_path, batch=8)
    same.train(resume_from_checkpoint=str(mid))  # the saved layout resumes
    assert [r.planned for r in sampler.efficiency_report().epochs][0] == 32
