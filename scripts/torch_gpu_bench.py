"""PyTorch reference throughput for scripts/gpu-check.sh step 3.

Trains torchvision ResNets (forward + backward + SGD step, fp32, channels
first) on random data on the GPU and prints images/s, one line per model:
  torch resnet18-cifar batch 256: N images/s
The CIFAR variant has MoCo's small stem (3x3 stride 1 conv, no max-pool).
With --tf32 the convolutions may use TF32 tensor cores (cuDNN's default,
what `mochi bench --tf32` does) and the lines read "batch 256 tf32"; matrix
products stay fp32 either way.
"""
import sys
import time

import torch
import torch.nn as nn
import torchvision


def cifar_resnet18():
    m = torchvision.models.resnet18(num_classes=128)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def bench(name, model, batch, size, steps, warmup=5, tag=""):
    dev = torch.device("cuda")
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size, device=dev)
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        opt.step()
    torch.cuda.synchronize()
    ips = batch * steps / (time.perf_counter() - t0)
    print(f"torch {name} batch {batch}{tag}: {ips:.0f} images/s", flush=True)


if __name__ == "__main__":
    tf32 = "--tf32" in sys.argv[1:]
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = tf32
    mode = "TF32 convolutions, fp32 matmul" if tf32 else "fp32, TF32 off"
    tag = " tf32" if tf32 else ""
    print("torch", torch.__version__, torch.cuda.get_device_name(0), f"({mode})", flush=True)
    bench("resnet18-cifar 32x32", cifar_resnet18(), 256, 32, 30, tag=tag)
    bench("resnet50 224x224", torchvision.models.resnet50(), 64, 224, 20, tag=tag)
    sys.exit(0)
