"""torchrun target for tests/test_streaming.py: a StreamSelector on 2 gloo ranks over a HF
streaming dataset split by node. Each rank writes its kept ids per epoch and digests of its store
and keep table to <out>/rank<r>.json."""

import argparse
import hashlib
import json
import os

import numpy as np
import torch.distributed as dist
from datasets import Dataset
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from gekodata.streaming import StreamSelector

N = 240


def digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    selector = StreamSelector(N, num_epochs=3, seed=5, budget=0.6)
    base = Dataset.from_dict({"id": list(range(N))}).to_iterable_dataset(num_shards=4)
    stream = selector.wrap(split_dataset_by_node(base, rank, world), "id")
    kept = []
    for epoch in range(3):
        selector.set_epoch(epoch)
        ids = []
        for batch in DataLoader(stream, batch_size=8):
            idx = batch["idx"]
            ids += idx.tolist()
            selector.report((idx % 7).float() * 0.3, None, None, idx)
        kept.append(ids)
    selector.save(os.path.join(args.out, "selector.safetensors"))
    selector.flush()
    store = selector.store
    out = {
        "kept": kept,
        "store": digest([store.columns[k] for k in sorted(store.columns)]),
        "keep": digest([selector.keep_probability]),
    }
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as fh:
        json.dump(out, fh)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
