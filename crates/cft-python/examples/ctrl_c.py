"""What Ctrl-C does during a long `cft.finetune`: run as a child process, interrupted after
one second by SIGINT (what a terminal's Ctrl-C sends), it prints the KeyboardInterrupt, how
long the stop took, and a second call that works.

    python3 crates/cft-python/examples/ctrl_c.py
"""

import os
import signal
import subprocess
import sys
import time

CHILD = r"""
import time, numpy as np, cft
rng = np.random.default_rng(0)
x = rng.normal(size=(20000, 256)).astype(np.float32)
y = (x[:, :20] + rng.normal(size=(20000, 20)) > 1).astype(np.float32)
w = np.zeros((20, 256), np.float32)
print("fine-tuning 20 categories for up to 1,000,000 GA generations ...", flush=True)
t = time.monotonic()
try:
    cft.finetune(x, y, x, y, w, method="ga", max_epochs=1_000_000, patience=1_000_000)
except KeyboardInterrupt:
    print(f"KeyboardInterrupt raised at {time.time():.3f}, {time.monotonic() - t:.2f} s into cft.finetune", flush=True)
r = cft.finetune(x[:1000], y[:1000], x[:1000], y[:1000], w, method="bp-asl", max_epochs=10, patience=10, lr=0.01)
print("the interpreter carries on: a second cft.finetune returned weights of shape", tuple(r.weight.shape))
"""

if __name__ == "__main__":
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    print(child.stdout.readline(), end="", flush=True)  # the child is fine-tuning now
    time.sleep(1.0)
    sent = time.time()
    child.send_signal(signal.SIGINT)
    print(f"[parent] SIGINT sent at {sent:.3f}", flush=True)
    for line in child.stdout:
        print(line, end="")
        if line.startswith("KeyboardInterrupt raised at "):
            print(f"[parent] stopped {float(line.split()[3].rstrip(',')) - sent:.3f} s after the signal")
    print(f"[parent] child exited with status {child.wait()}")
