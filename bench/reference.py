#!/usr/bin/env python3
"""The PyTorch reference for muki's benchmarks: the same models, weights and token ids, run the
way the MUKI authors' Python scripts run them (lancopku/MUKI): the teacher in train mode for each
of the K stochastic passes, one forward call per pass, batches of 32; the student trained with
AdamW, batches of 32. Tokenization is not timed here (muki's figures include it), so the ratios
are, if anything, flattering to the reference.

  reference.py teacher_pass --checkpoint DIR [--checkpoint DIR] --ids FILE --examples N
                            [--samples 1,4,16] [--threads 2]
  reference.py teacher_pass_best ... [--precision fp32|bf16]   (see teacher_pass_best)
  reference.py student --checkpoint DIR --ids FILE --examples N [--epochs 1] [--threads 2]
                      [--precision fp32|bf16 (bf16: the forward under torch.autocast, as
                      muki's train.precision = "bf16")]

The models mirror core/model/src/models.cpp layer by layer and load its weights.pt (a TorchScript
archive of named tensors). Needs Debian's python3-torch (1.13, the same as libtorch-dev).
Prints one JSON object.
"""
import argparse
import json
import math
import os
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F


class EncoderLayer(nn.Module):
    def __init__(self, hidden, heads, ffn, p):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attention_dropout = nn.Dropout(p)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_out_dropout = nn.Dropout(p)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ffn_dropout = nn.Dropout(p)
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x, key_padding):
        b, l, h = x.shape
        dh = h // self.heads
        split = lambda t: t.view(b, l, self.heads, dh).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(dh)
        scores = scores.masked_fill(key_padding.view(b, 1, 1, l), -1e9)
        probs = self.attention_dropout(torch.softmax(scores, -1))
        context = (probs @ v).transpose(1, 2).contiguous().view(b, l, h)
        hidden = self.attention_norm(x + self.attention_out_dropout(self.attention_out(context)))
        return self.ffn_norm(hidden + self.ffn_dropout(self.ffn_out(F.gelu(self.ffn_in(hidden)))))


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pooling = c["pooling"]
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden"])
        self.position_embedding = nn.Embedding(c["max_length"], c["hidden"])
        self.embedding_norm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.embedding_dropout = nn.Dropout(c["dropout"])
        self.layers = nn.ModuleList(
            EncoderLayer(c["hidden"], c["heads"], c["ffn"], c["dropout"]) for _ in range(c["layers"]))
        self.classifier_dropout = nn.Dropout(c["dropout"])
        self.classifier = nn.Linear(c["hidden"], c["num_labels"])

    def forward(self, ids, mask):
        positions = torch.arange(ids.shape[1])
        x = self.embedding_dropout(self.embedding_norm(self.token_embedding(ids) + self.position_embedding(positions)))
        key_padding = mask == 0
        for layer in self.layers:
            x = layer(x, key_padding)
        if self.pooling == "mean":
            m = (mask != 0).float().unsqueeze(-1)
            pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        else:
            pooled = x[:, 0]
        return self.classifier(self.classifier_dropout(pooled))


class Cnn(nn.Module):
    KERNELS = (3, 4, 5)

    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden"])
        self.embedding_dropout = nn.Dropout(c["dropout"])
        for k in self.KERNELS:
            setattr(self, f"conv{k}", nn.Conv1d(c["hidden"], c["filters"], k))
        self.dropout = nn.Dropout(c["dropout"])
        self.classifier = nn.Linear(c["filters"] * len(self.KERNELS), c["num_labels"])

    def forward(self, ids, mask):
        real = mask != 0
        x = self.embedding_dropout(self.token_embedding(ids))
        x = F.pad((x * real.unsqueeze(-1).float()).transpose(1, 2), (0, self.KERNELS[-1] - 1))
        pooled = []
        for k in self.KERNELS:
            h = torch.relu(getattr(self, f"conv{k}")(x))[:, :, : ids.shape[1]]
            pooled.append(h.masked_fill(~real.unsqueeze(1), 0.0).max(2).values)
        return self.classifier(self.dropout(torch.cat(pooled, 1)))


class BagOfEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden"])
        self.dropout = nn.Dropout(c["dropout"])
        self.classifier = nn.Linear(c["hidden"], c["num_labels"])

    def forward(self, ids, mask):
        m = (mask != 0).float().unsqueeze(-1)
        return self.classifier(self.dropout((self.token_embedding(ids) * m).sum(1) / m.sum(1).clamp_min(1.0)))


MODELS = {"transformer": Transformer, "cnn": Cnn, "bag_of_embeddings": BagOfEmbeddings}


def load(checkpoint, weights=True):
    with open(os.path.join(checkpoint, "config.toml"), "rb") as f:
        config = tomllib.load(f)["model"]
    model = MODELS[config["type"]](config)
    if weights:
        stored = dict(torch.jit.load(os.path.join(checkpoint, "weights.pt")).named_parameters())
        model.load_state_dict({k: v.detach() for k, v in stored.items()})
    return model, config


def read_ids(path, n, length):
    flat = torch.from_file(path, size=2 * n * length, dtype=torch.int64)
    return flat[: n * length].view(n, length), flat[n * length:].view(n, length)


def batches(ids, mask, size):
    for start in range(0, ids.shape[0], size):
        b_ids, b_mask = ids[start:start + size], mask[start:start + size]
        length = max(1, int(b_mask.sum(1).max()))  # drop all-padding columns, as muki does
        yield b_ids[:, :length], b_mask[:, :length]


def teacher_pass(args):
    teachers = [load(c) for c in args.checkpoint]
    ids, mask = read_ids(args.ids, args.examples, teachers[0][1]["max_length"])
    results = []
    for k in [int(s) for s in args.samples.split(",")]:
        for count in range(1, len(teachers) + 1):
            start = time.perf_counter()
            for model, _ in teachers[:count]:
                with torch.no_grad():
                    for b_ids, b_mask in batches(ids, mask, 32):
                        model.eval()
                        torch.softmax(model(b_ids, b_mask), -1)
                        if k > 0:
                            model.train()  # MC dropout: dropout on (the authors' intent)
                            probs = [torch.softmax(model(b_ids, b_mask), -1) for _ in range(k)]
                            torch.stack(probs).mean(0)
            seconds = time.perf_counter() - start
            results.append({"teachers": count, "samples": k, "seconds": seconds,
                            "examples_per_s": args.examples / seconds})
    return {"bench": "teacher_pass", "implementation": "pytorch-reference", "threads": args.threads,
            "examples": args.examples, "batch_size": 32, "torch": torch.__version__,
            "note": "K separate forward passes in train mode, batches of 32, tokenization not timed",
            "results": results}


def teacher_pass_best(args):
    """The same work as a competent PyTorch user would write it for speed: texts sorted by length
    (so batches are padded little), the K stochastic passes of a batch as ONE forward call over
    the texts replicated K times (32 rows a call, muki's CPU default), inference mode, and bf16
    autocast with --precision bf16."""
    teachers = [load(c) for c in args.checkpoint]
    ids, mask = read_ids(args.ids, args.examples, teachers[0][1]["max_length"])
    order = torch.sort(mask.ne(0).sum(1), stable=True).indices
    ids, mask = ids[order], mask[order]
    bf16 = args.precision == "bf16"
    results = []
    for k in [int(s) for s in args.samples.split(",")]:
        for count in range(1, len(teachers) + 1):
            start = time.perf_counter()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for model, config in teachers[:count]:
                    model.eval()
                    for b_ids, b_mask in batches(ids, mask, 32):
                        torch.softmax(model(b_ids, b_mask).float(), -1)
                    model.train()  # dropout on
                    for b_ids, b_mask in batches(ids, mask, max(1, 32 // k)) if k > 0 else ():
                        logits = model(b_ids.repeat(k, 1), b_mask.repeat(k, 1)).float()
                        torch.softmax(logits, -1).view(k, b_ids.shape[0], -1).mean(0)
            seconds = time.perf_counter() - start
            results.append({"teachers": count, "samples": k, "seconds": seconds,
                            "examples_per_s": args.examples / seconds})
    return {"bench": "teacher_pass", "implementation": "pytorch-best", "threads": args.threads,
            "examples": args.examples, "precision": args.precision, "torch": torch.__version__,
            "note": "length-sorted, K passes as one forward over 32 rows, inference mode, tokenization not timed",
            "results": results}


def student(args):
    torch.manual_seed(1)
    model, config = load(args.checkpoint[0], weights=False)
    ids, mask = read_ids(args.ids, args.examples, config["max_length"])
    targets = torch.softmax(torch.randn(args.examples, config["num_labels"]) * 2, 1)
    weights = torch.rand(args.examples)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    steps = args.epochs * math.ceil(args.examples / 32)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(1, steps // 10), max(0.0, (steps - s) / steps)))
    start = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(args.examples)
        for b in range(0, args.examples, 32):
            rows = order[b:b + 32]
            (b_ids, b_mask), = batches(ids[rows], mask[rows], 32)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                logits = model(b_ids, b_mask)
            log_q = torch.log_softmax(logits.float(), -1)
            t = targets[rows]
            kl = (t * (torch.where(t > 0, t.log(), torch.zeros_like(t)) - log_q)).sum(-1)
            loss = (weights[rows] * kl).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            loss.item()
    seconds = time.perf_counter() - start
    return {"bench": "student", "implementation": "pytorch-reference", "model": config["type"],
            "threads": args.threads, "examples": args.examples, "epochs": args.epochs,
            "batch_size": 32, "precision": args.precision, "steps": steps, "seconds": seconds, "torch": torch.__version__,
            "examples_per_s": args.examples * args.epochs / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=["teacher_pass", "teacher_pass_best", "student"])
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--examples", type=int, required=True)
    parser.add_argument("--samples", default="1,4,16")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = {"teacher_pass": teacher_pass, "teacher_pass_best": teacher_pass_best, "student": student}
    print(json.dumps(run[args.bench](args)))


if __name__ == "__main__":
    main()
