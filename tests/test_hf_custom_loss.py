"""A GekoTrainer subclass with its own compute_loss (the most common Trainer customisation) that
does not call super().compute_loss reports nothing: that must be said, not reported as savings."""
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
import torch  # noqa: E402
from support.hf_toy import ToyText, tiny_bert  # noqa: E402
from transformers import TrainingArguments  # noqa: E402

from gekodata import PruningDataset, WeightedBucketSampler  # noqa: E402
from gekodata.hf import GekoTrainer  # noqa: E402


class ClassWeighted(GekoTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {k: v for k, v in inputs.items() if k not in ("idx", "weight")}
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weights = torch.tensor([1.0, 2.0, 1.0])
        loss = torch.nn.functional.cross_entropy(outputs.logits, labels, weight=weights)
        return (loss, outputs) if return_outputs else loss


def test_a_custom_loss_that_bypasses_reporting_warns_and_claims_no_savings(tmp_path):
    ds = PruningDataset(ToyText(16))
    sampler = WeightedBucketSampler(ds, num_epochs=2, seed=0, shard=False)
    args = TrainingArguments(
        str(tmp_path), num_train_epochs=2, per_device_train_batch_size=8, report_to=[],
        disable_tqdm=True, use_cpu=True, save_strategy="no",
    )
    trainer = ClassWeighted(model=tiny_bert(), args=args, train_dataset=ds, sampler=sampler)
    with pytest.warns(UserWarning, match="none was reported"):
        trainer.train()
    text = str(sampler.efficiency_report())
    assert "nothing was reported" in text and "100.0% saved" not in text
