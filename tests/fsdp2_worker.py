"""Run by test_train.py under torchrun: FSDP2 (`fully_shard`) on a tiny LynxModel over gloo on CPU. Each rank writes
its losses and its own shards of the trained weights, which the test compares with one process taking the same steps."""

import json, os, sys, torch, torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.fsdp import fully_shard
from lynx_lite.config import get_preset
from lynx_lite.model import LynxModel
from lynx_lite.chat_format import tiny_tokenizer, encode_batch
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
batch = encode_batch(tok, ["what colour is it?", "how many shapes?"], ["red", "two"])
pix = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(rank))  # each rank its own images
opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
losses = []
for _ in range(10):
    loss = m(**batch, pixel_values=pix).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    losses.append(loss.item())
shards = {n: p.to_local().detach().contiguous() for n, p in m.named_parameters() if p.requires_grad}  # no gathering
dist.barrier()
save_file(shards, f"{sys.argv[1]}/rank{rank}.safetensors")
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
    f.write(json.dumps(dict(rank=rank, world=world, losses=losses)))  # one file per rank: stdout lines interleave
dist.barrier()
dist.destroy_process_group()
# gloo's worker threads can abort the interpreter's own finalisation under load ("terminate called without an active
# exception", after all the work above is done and written); leave without running it.
os._exit(0)
