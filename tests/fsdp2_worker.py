"Run by test_train.py under torchrun: FSDP2 (`fully_shard`) on a tiny LynxModel over gloo on CPU."

import json, os, sys, torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from lynx_lite.config import get_preset
from lynx_lite.model import LynxModel
from lynx_lite.text import tiny_tokenizer, encode_batch
from lynx_lite.adapters import decoder_layers

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
m = LynxModel(get_preset("tiny")).train()
for layer in decoder_layers(m.llm):
    fully_shard(layer)
fully_shard(m.resampler)
fully_shard(m)
tok = tiny_tokenizer()
g = torch.Generator().manual_seed(rank)
batch = encode_batch(tok, ["what colour is it?", "how many shapes?"], ["red", "two"])
pix = torch.randn(2, 3, 32, 32, generator=g)
opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
losses = []
for _ in range(10):
    loss = m(**batch, pixel_values=pix).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    losses.append(loss.item())
w = dict(m.named_parameters())["resampler.layers.0.1.1.weight"]  # the resampler FF up-projection, (128, 64)
full = {n: p.full_tensor().sum().item() for n, p in m.named_parameters() if p.requires_grad}
out = dict(
    rank=rank,
    world=world,
    losses=losses,
    local=list(w.to_local().shape),
    full=list(w.full_tensor().shape),
    digest=sum(full.values()),
)
dist.barrier()
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
    f.write(json.dumps(out))  # one file per rank: stdout lines interleave
dist.destroy_process_group()
# gloo's worker threads can abort the interpreter's own finalisation under load ("terminate called without an active
# exception", after all the work above is done and written); leave without running it.
os._exit(0)
