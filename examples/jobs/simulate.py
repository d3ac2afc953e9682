"""A stand-in experiment for the sample course's [jobs]: a seeded random walk, its summary
written to results/results.csv (the course's `results`), which labtui brings home."""

import argparse
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--big", action="store_true", help="ten times the steps")
args = parser.parse_args()
rng = random.Random(args.seed)
steps = 100_000 * (10 if args.big else 1)
position = peak = 0
for _ in range(steps):
    position += rng.choice((-1, 1))
    peak = max(peak, abs(position))
os.makedirs("results", exist_ok=True)
with open("results/results.csv", "w") as f:
    f.write("job,seed,steps,final,peak\n")
    f.write(f"{os.environ.get('LABTUI_JOB', '')},{args.seed},{steps},{position},{peak}\n")
print(f"seed {args.seed}: {steps} steps, final {position}, peak {peak}")
