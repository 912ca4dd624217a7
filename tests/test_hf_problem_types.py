"""GekoTrainer follows the model's problem_type: multi-label classification out of the box;
regression (no correctness without a tolerance) says how to pass its signals."""
import functools

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
import torch  # noqa: E402
from support.hf_toy import ToyText, tiny_bert  # noqa: E402
from transformers import TrainingArguments  # noqa: E402

from gekodata import PruningDataset, WeightedBucketSampler  # noqa: E402
from gekodata.hf import GekoTrainer  # noqa: E402
from gekodata.signals import multi_label_signals, regression_signals  # noqa: E402


class Relabelled(torch.utils.data.Dataset):
    """ToyText with multi-hot float labels [3] or a float regression target."""

    def __init__(self, kind: str, n: int = 16):
        self.base, self.kind = ToyText(n), kind

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = dict(self.base[i])
        y = int(item["labels"])
        if self.kind == "multi":
            item["labels"] = torch.tensor([float(y == 0), float(y >= 1), float(y == 2)])
        else:
            item["labels"] = torch.tensor(float(y))
        return item


def run(tmp_path, kind, num_labels, **kw):
    model = tiny_bert(num_labels=num_labels)
    if kind == "multi":
        model.config.problem_type = "multi_label_classification"
    ds = PruningDataset(Relabelled(kind))
    sampler = WeightedBucketSampler(ds, num_epochs=2, seed=0, shard=False)
    args = TrainingArguments(
        str(tmp_path), num_train_epochs=2, per_device_train_batch_size=8, report_to=[],
        disable_tqdm=True, use_cpu=True, save_strategy="no",
    )
    GekoTrainer(model=model, args=args, train_dataset=ds, sampler=sampler, **kw).train()
    return sampler


def test_multi_label_models_report_out_of_the_box(tmp_path):
    sampler = run(tmp_path, "multi", 3)
    assert sampler.efficiency_report().trained_passes > 0
    assert (sampler.store.visits > 0).all()


def test_regression_models_say_how_to_pass_signals(tmp_path):
    with pytest.raises(ValueError, match=r"regression_signals, tolerance=\.\.\."):
        run(tmp_path, "regression", 1)
    sampler = run(tmp_path, "regression", 1,
                  signals=functools.partial(regression_signals, tolerance=0.5))
    assert (sampler.store.visits > 0).all()


def test_multi_label_and_regression_signals_by_hand():
    logits = torch.tensor([[3.0, -3.0], [3.0, 3.0]], requires_grad=True)
    loss, conf, correct = multi_label_signals(logits, torch.tensor([[1, 0], [1, 0]]))
    assert correct.tolist() == [True, False] and loss.shape == (2,) and loss.requires_grad
    assert torch.allclose(conf, torch.exp(-loss.detach()))
    loss, conf, correct = regression_signals(torch.tensor([[1.0], [2.0]]), torch.tensor([1.2, 0.0]),
                                             tolerance=0.25)
    assert correct.tolist() == [True, False]
    assert torch.allclose(loss, torch.tensor([0.04, 4.0]))
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        regression_signals(torch.zeros(2), torch.zeros(2), tolerance=-1.0)
