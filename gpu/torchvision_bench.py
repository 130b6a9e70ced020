"""torchvision images/s on this GPU, as the issue's table measures it: network only (input
already on the GPU), batch 64, cuDNN benchmark mode, fp32 with TF32 convolutions and bf16
autocast. One JSON line per configuration."""
import json
import time

import torch
import torchvision

torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
for name, size in [("resnet101", 448), ("resnet50", 448), ("densenet121", 224)]:
    model = getattr(torchvision.models, name)(weights=None).cuda().eval()
    x = torch.rand(64, 3, size, size, device="cuda")
    for mode in ["fp32_tf32", "bf16_autocast"]:
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if mode == "bf16_autocast" else torch.no_grad()
        with torch.inference_mode(), ctx:
            for _ in range(3):
                model(x)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(10):
                model(x)
            torch.cuda.synchronize()
            s = time.perf_counter() - t
        print(json.dumps({"backbone": name, "image_size": size, "batch": 64, "mode": mode,
                          "images_per_second": 640 / s, "torch": torch.__version__,
                          "torchvision": torchvision.__version__, "gpu": torch.cuda.get_device_name()}), flush=True)
