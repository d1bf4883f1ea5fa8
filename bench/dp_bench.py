"""Private training, measured: eval loss at ε = 8 against non-private training on the same data
and steps, and a canary audit (Carlini et al. 2019, "The Secret Sharer").

Secret canaries ("The PIN of account 4417 is 7 3 9 1 4 2.") are planted in the training data,
each owned by one user who repeats it ``--repeats`` times. After training, every canary's true
secret is ranked, by the model's loss on the answer, among ``--candidates`` random secrets of the
same format: exposure = log2(candidates + 1) - log2(rank). A model that never saw the secret
ranks it anywhere (expected exposure ≈ 1.4 bits); full memorization reaches the maximum.

    python -m bench.dp_bench                 # SmolLM2-135M-Instruct (the demo's model), CPU
    python -m bench.dp_bench --tiny          # a ~100k-parameter Llama, seconds (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tuneloop.model.base import load_base
from tuneloop.model.fetch import fetch_default
from tuneloop.records import Message, Record
from tuneloop.train.data import Example, Row, collate, single_rows, tokenize
from tuneloop.train.loop import Trainer, TrainSettings
from tuneloop.train.lora import LoraSettings, with_lora
from tuneloop.train.privacy import PrivacySettings, unit_of
from tuneloop.train.private import PrivateTrainer

from bench import data

OUT = Path("bench/out/dp")


def alpaca(n: int, offset: int = 0) -> list[Record]:
    rows = json.loads((data.root() / data.ALPACA).read_text(encoding="utf-8"))
    return [
        Record(
            id=f"a{offset + i}",
            shape="chat",
            user_id=f"user{offset + i}",
            messages=(
                Message("user", f"{r['instruction']}\n{r['input']}".strip()),
                Message("assistant", r["output"]),
            ),
        )
        for i, r in enumerate(rows[offset : offset + n])
    ]


def secret(rng: random.Random) -> str:
    return " ".join(str(rng.randrange(10)) for _ in range(6))


def canary_messages(account: int, pin: str) -> tuple[Message, Message]:
    return (
        Message("user", f"What is the PIN of account {account}?"),
        Message("assistant", f"The PIN of account {account} is {pin}."),
    )


def canaries(n: int, repeats: int, seed: int = 7) -> list[tuple[int, str, list[Record]]]:
    """``n`` canaries, each one user's, repeated ``repeats`` times in their records."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        account, pin = 4000 + rng.randrange(6000), secret(rng)
        recs = [
            Record(id=f"canary{k}-{j}", shape="chat", user_id=f"canary-user{k}",
                   messages=canary_messages(account, pin))
            for j in range(repeats)
        ]  # fmt: skip
        out.append((account, pin, recs))
    return out


def answer_losses(model: Any, tok: Any, prompts: list[tuple[Message, Message]]) -> list[float]:
    """Summed loss of each assistant answer given its question (batches of 64)."""
    import torch

    examples = tokenize(
        [Record(id=str(i), shape="chat", messages=m) for i, m in enumerate(prompts)], tok, 128
    ).examples
    rows = single_rows(examples)
    out: list[float] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            batch = collate(rows[start : start + 64], tok.pad_token_id, packed=False)
            labels = batch.pop("labels")
            logits = model(**batch, use_cache=False).logits[:, :-1].float()
            target = labels[:, 1:]
            per = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
                reduction="none",
            ).view(target.shape)  # fmt: skip
            out += per.sum(dim=1).tolist()
    return out


def exposure(model: Any, tok: Any, account: int, pin: str, candidates: int) -> float:
    rng = random.Random(account)
    others: set[str] = set()
    while len(others) < candidates:
        s = secret(rng)
        if s != pin:
            others.add(s)
    pins = [pin, *sorted(others)]
    losses = answer_losses(model, tok, [canary_messages(account, p) for p in pins])
    rank = 1 + sum(1 for x in losses[1:] if x < losses[0])
    return math.log2(len(pins)) - math.log2(rank)


def eval_loss(model: Any, pad_id: int, rows: list[Row]) -> float:
    trainer = Trainer.__new__(Trainer)
    trainer.model, trainer.pad_id = model, pad_id
    trainer.settings = TrainSettings(packing=False)
    trainer.val_batches = [rows[i : i + 8] for i in range(0, len(rows), 8)]
    return float(trainer.eval_loss() or 0.0)


def train_one(
    base: Path, settings: TrainSettings, rows: list[Row], units: list[str], name: str
) -> tuple[Any, dict[str, Any]]:
    import torch

    model, tok, _ = load_base(str(base))
    torch.manual_seed(settings.seed)
    model = with_lora(model, settings.lora)
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    if settings.privacy is not None:
        trainer: Trainer = PrivateTrainer(model, tok.pad_token_id, rows, [], settings, out, units)
    else:
        trainer = Trainer(model, tok.pad_token_id, rows, [], settings, out)
    start = time.perf_counter()
    trainer.run()
    info: dict[str, Any] = {"seconds": time.perf_counter() - start}
    if isinstance(trainer, PrivateTrainer):
        info["privacy"] = trainer.privacy_lineage()
    return trainer.model, info


def base_model(tiny: bool, out: Path) -> Path:
    """SmolLM2 (the offline default), or with ``tiny`` a tiny random Llama for a smoke test."""
    if not tiny:
        return Path(fetch_default())
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.tiny import build_tiny_model

    return Path(build_tiny_model(out / "tiny-model"))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = base_model(args.tiny, OUT)
    _, tok, _ = load_base(str(base))
    planted = canaries(args.canaries, args.repeats)
    records = alpaca(args.records) + [r for _, _, recs in planted for r in recs]
    random.Random(0).shuffle(records)
    examples: list[Example] = tokenize(records, tok, args.max_len).examples
    by_id = {r.id: r for r in records}
    rows = single_rows(examples)
    units = [unit_of(by_id[e.record_id]) for e in examples]
    val = single_rows(tokenize(alpaca(args.val, offset=args.records), tok, args.max_len).examples)
    lora = LoraSettings(r=args.rank, alpha=2 * args.rank, dropout=0.0,
                        target_modules=("q_proj", "v_proj"))  # fmt: skip
    plain = TrainSettings(max_steps=args.steps, micro_batch=args.batch, grad_accum=1, lr=args.lr,
                          warmup_steps=2, eval_every=10**6, save_every=10**6, packing=False,
                          max_len=args.max_len, lora=lora)  # fmt: skip
    arms: list[tuple[str, TrainSettings | None]] = [("base model (no training)", None),
                                                     ("non-private", plain)]  # fmt: skip
    for eps in args.epsilons:
        privacy = PrivacySettings(epsilon=eps, delta=args.delta, max_grad_norm=args.clip,
                                  max_examples_per_user=args.repeats)  # fmt: skip
        arms.append((f"DP ε = {eps:g}", plain.model_copy(update={"privacy": privacy})))
    results = []
    for name, settings in arms:
        if settings is None:
            model, info = load_base(str(base))[0], {"seconds": 0.0}
        else:
            model, info = train_one(base, settings, rows, units, name.split()[0].lower())
        start = time.perf_counter()
        exposures = [exposure(model, tok, a, p, args.candidates) for a, p, _ in planted]
        results.append({
            "arm": name, **info, "eval_loss": eval_loss(model, tok.pad_token_id, val),
            "exposure": exposures, "audit_seconds": time.perf_counter() - start,
        })  # fmt: skip
        print(json.dumps(results[-1]), flush=True)
    return results


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    top = math.log2(args.candidates + 1)
    lines = [
        f"| arm | eval loss | canary exposure, mean (max {top:.1f} bits) | per canary | "
        "ε spent (δ) | σ | train s |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for r in results:
        p = r.get("privacy")
        eps = f"{p['epsilon']:.2f} ({p['delta']:g})" if p else "—"
        sigma = f"{p['noise_multiplier']:.2f}" if p else "—"
        per = " ".join(f"{x:.1f}" for x in r["exposure"])
        mean = sum(r["exposure"]) / len(r["exposure"])
        lines.append(f"| {r['arm']} | {r['eval_loss']:.3f} | {mean:.2f} | {per} | {eps} | "
                     f"{sigma} | {r['seconds']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke test)")
    ap.add_argument("--records", type=int, default=200, help="Alpaca records, one user each")
    ap.add_argument("--val", type=int, default=48)
    ap.add_argument("--canaries", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=4, help="copies of each canary (one user)")
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8, help="rows per step; expected users for DP")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--epsilons", type=float, nargs="+", default=[8.0])
    args = ap.parse_args(argv)
    results = run(args)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"args": vars(args), "results": results}))
    print(table(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
