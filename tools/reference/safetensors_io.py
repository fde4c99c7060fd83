"""Reading the safetensors files Histo writes, for the PyTorch references (Debian 12 has no safetensors package)."""
import json

import numpy as np
import torch


def read_safetensors(path):
    """The safetensors format: u64 little-endian header length, JSON header (dtype, shape, data_offsets), raw data."""
    with open(path, 'rb') as f:
        n = int.from_bytes(f.read(8), 'little')
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {'F32': np.float32, 'F16': np.float16, 'I64': np.int64}
    return {name: torch.from_numpy(np.frombuffer(data, dtypes[h['dtype']], count=int(np.prod(h['shape'])),
                                                 offset=h['data_offsets'][0]).reshape(h['shape']).copy())
            for name, h in header.items() if name != '__metadata__'}
