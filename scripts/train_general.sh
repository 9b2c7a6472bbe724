#!/bin/sh
# l2l's general optimizer: PES on the "general" mixture, resumable in chunks (append --resume).
# Run it from a checkout (the repository root); it writes runs/general there.
exec nice -n 10 .venv/bin/python train.py --problem=general \
  --preset=celo-adam --estimator=pes --num_tasks=4 --num_particles=1 --sigma=0.01 \
  --truncation=20 --horizon=loguniform:100:2000 --augment=reparam --num_outer_steps=30000 \
  --learning_rate=3e-4 --evaluation_period=1000 --evaluation_epochs=2 --num_steps=500 \
  --save_path=runs/general --checkpoint_every=100 --progress_seconds=120 "$@"
