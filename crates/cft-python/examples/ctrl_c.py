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
    print(f"KeyboardInterrupt raised {time.monotonic() - t:.2f} s after the start", flush=True)
r = cft.finetune(x[:1000], y[:1000], x[:1000], y[:1000], w, method="bp-asl", max_epochs=10, patience=10, lr=0.01)
print("the interpreter carries on: a second cft.finetune returned weights of shape", tuple(r.weight.shape))
"""

if __name__ == "__main__":
    child = subprocess.Popen([sys.executable, "-c", CHILD])
    time.sleep(1.0)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    print(f"[parent] SIGINT sent after 1.0 s", flush=True)
    code = child.wait()
    print(f"[parent] child exited with status {code}")
