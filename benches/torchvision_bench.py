"""torchvision's images/s, to put beside `cft bench-backbone` and `cft extract` in one run.

Network only (input already on the device, as `cft bench-backbone` measures):
    python3 benches/torchvision_bench.py network --device cuda --batch 64 \
        --model resnet101:448 --model resnet50:448 --model densenet121:224 --mode fp32 --mode bf16
From files (what a user runs: `ImageFolder`-style list, PIL decode, `Resize((S, S))`,
`ToTensor`, `DataLoader` workers, pinned memory, features written to disk):
    python3 benches/torchvision_bench.py files --device cuda --images DIR --model resnet101:448 \
        --batch 64 --workers 16 --out feats.safetensors

Modes: fp32 (on CUDA with TF32 convolutions and matmuls, torchvision's default speed setting),
fp32-strict (TF32 off), bf16 (autocast). On the CPU only fp32 is meaningful. One JSON line per
configuration on stdout. Weights are random (timing does not depend on them) unless
--weights-out asks to save them, so that `cft extract --weights` can read the same ones.
"""
import argparse
import json
import os
import struct
import time

import torch
import torchvision


def safetensors_save(tensors, path):
    """A minimal safetensors writer (the format is a JSON header + raw little-endian data), so the
    script needs no package beyond torch."""
    names = sorted(tensors)
    header, offset, blobs = {}, 0, []
    for n in names:
        t = tensors[n].detach().to("cpu").contiguous()
        dtype = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}[t.dtype]
        data = t.view(torch.uint8).numpy().tobytes() if t.dim() else t.reshape(1).view(torch.uint8).numpy().tobytes()
        header[n] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def build(name, device, channels_last):
    model = getattr(torchvision.models, name)(weights=None).eval()
    head = "fc" if name.startswith("resnet") else "classifier"
    setattr(model, head, torch.nn.Identity())
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def context(mode, device):
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        tf32 = mode != "fp32-strict"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    if mode == "bf16":
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    return torch.no_grad()


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def versions(device):
    v = {"torch": torch.__version__, "torchvision": torchvision.__version__, "threads": torch.get_num_threads()}
    v["device_name"] = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    return v


def network(args):
    for spec in args.model:
        name, size = spec.split(":")
        size = int(size)
        model = build(name, args.device, args.channels_last)
        x = torch.rand(args.batch, 3, size, size, device=args.device)
        if args.channels_last:
            x = x.to(memory_format=torch.channels_last)
        for mode in args.mode:
            with torch.inference_mode(), context(mode, args.device):
                for _ in range(args.warmup):
                    model(x)
                sync(args.device)
                t = time.perf_counter()
                for _ in range(args.iters):
                    model(x)
                sync(args.device)
                s = time.perf_counter() - t
            print(json.dumps({"what": "network", "backbone": name, "image_size": size, "batch": args.batch,
                              "mode": mode, "channels_last": args.channels_last, "device": args.device,
                              "images_per_second": args.iters * args.batch / s, **versions(args.device)}), flush=True)


class Files(torch.utils.data.Dataset):
    """torchvision's default loader on a sorted folder: PIL open + convert("RGB"), Resize((S, S)),
    ToTensor (no normalisation, the reference COCO pipeline)."""

    def __init__(self, folder, size):
        self.paths = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                            if f.lower().endswith((".jpg", ".jpeg", ".png")))
        self.tf = torchvision.transforms.Compose([
            torchvision.transforms.Resize((size, size)), torchvision.transforms.ToTensor()])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image
        with open(self.paths[i], "rb") as f:
            return self.tf(Image.open(f).convert("RGB"))


def files(args):
    name, size = args.model[0].split(":")
    size = int(size)
    torch.manual_seed(0)
    model = build(name, args.device, args.channels_last)
    if args.weights_out:
        sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        safetensors_save(sd, args.weights_out)
    data = Files(args.images, size)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, num_workers=args.workers,
                                         pin_memory=args.device.startswith("cuda"), shuffle=False)
    mode = args.mode[0]
    t = time.perf_counter()
    out = []
    with torch.inference_mode(), context(mode, args.device):
        for x in loader:
            x = x.to(args.device, non_blocking=True)
            if args.channels_last:
                x = x.to(memory_format=torch.channels_last)
            out.append(model(x).float().cpu())
    feats = torch.cat(out)
    if args.out:
        safetensors_save({"features": feats}, args.out)
    s = time.perf_counter() - t
    print(json.dumps({"what": "files", "backbone": name, "image_size": size, "batch": args.batch, "mode": mode,
                      "workers": args.workers, "images": len(data), "device": args.device, "seconds": s,
                      "images_per_second": len(data) / s, **versions(args.device)}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["network", "files"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", action="append", required=True, help="name:size, e.g. resnet50:224")
    p.add_argument("--mode", action="append", choices=["fp32", "fp32-strict", "bf16"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--images", help="folder of images (files)")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--out", help="write the features here (safetensors, key `features`)")
    p.add_argument("--weights-out", help="save the model's random weights (safetensors state dict)")
    args = p.parse_args()
    args.mode = args.mode or ["fp32"]
    if args.threads:
        torch.set_num_threads(args.threads)
    network(args) if args.what == "network" else files(args)


if __name__ == "__main__":
    main()
