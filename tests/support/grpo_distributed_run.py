"""Run under torchrun --nproc_per_node=2 (gloo, CPU): GekoGRPOTrainer with every group of completions
split across the two processes (per_device_train_batch_size=2, num_generations=4). The reward for
prompts with idx % 3 == 2 is 1 on rank 0 and 0 on rank 1: each rank's half of such a group is
unanimous, the whole group is not. Each rank writes <out>/rank<r>.json."""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch.distributed as dist
from grpo_toy import char_tokenizer, prompt_dataset, save_tiny_model

from gekodata import PromptPolicy, WeightedBucketSampler

N, G, EPOCHS = 9, 4, 2


def main():
    from trl import GRPOConfig

    from gekodata.hf import GekoGRPOTrainer, with_prompt_index
    from gekodata.prompts import reward_reporter

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rank = int(os.environ["RANK"])
    model_dir = args.out / "model"
    if rank == 0:
        save_tiny_model(model_dir)
    calls = []

    def reward(completions, idx, **kwargs):
        calls.append(list(idx))
        return [1.0 if i % 3 == 0 else 0.0 if i % 3 == 1 else float(rank == 0) for i in idx]

    ds = with_prompt_index(prompt_dataset(N))
    sampler = WeightedBucketSampler(
        ds, PromptPolicy(group_size=G), num_epochs=EPOCHS, seed=0, shard=False
    )
    config = GRPOConfig(
        output_dir=str(args.out / "run"),
        per_device_train_batch_size=2,
        num_generations=G,
        max_completion_length=3,
        num_train_epochs=EPOCHS,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        bf16=False,
        disable_tqdm=True,
        logging_steps=1,
    )
    plans = {}
    while not (
        model_dir / "config.json"
    ).is_file():  # rank 0 writes it; torchrun starts both at once
        time.sleep(0.1)
    time.sleep(0.5)
    trainer = GekoGRPOTrainer(
        model=str(model_dir),
        args=config,
        train_dataset=ds,
        sampler=sampler,
        reward_funcs=[reward_reporter(sampler, reward)],
        processing_class=char_tokenizer(),
    )
    from transformers import TrainerCallback

    class Plans(TrainerCallback):
        def on_epoch_begin(self, a, state, control, **kw):
            plans[len(plans)] = sampler.global_plan.tolist()

    trainer.add_callback(Plans())
    trainer.train()
    h = hashlib.sha256()
    for name in sorted(sampler.store.columns):
        h.update(name.encode())
        h.update(sampler.store.columns[name].tobytes())
    result = {
        "calls": calls,
        "plans": plans,
        "store_digest": h.hexdigest(),
        "group_streak": sampler.store.group_streak.tolist(),
        "visits": sampler.store.visits.tolist(),
        "trained_passes": sampler.efficiency_report().trained_passes,
        "global_step": trainer.state.global_step,
    }
    (args.out / f"rank{rank}.json").write_text(json.dumps(result))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
