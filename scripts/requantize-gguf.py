"""Rewrites a GGUF's Q4_1 weight matrices in another quantization, everything else as it is.

    python scripts/requantize-gguf.py IN.gguf OUT.gguf Q8_0|Q4_0

Why: llama.cpp's CPU backend multiplies Q4_0 and Q8_0 matrices with kernels that share each
weight row across a batch (repacked / tinyBLAS), while Q4_1 goes row by row. The only
SmolLM2-135M-Instruct in a package registry is Q4_1, so decoding several conversations at once
gained nothing over one; see README, "Embedded model". Needs the `gguf` package (and numpy).
Deterministic: the same input gives the same bytes, so the result can be checked by sha256.
"""
import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants


def main() -> None:
    src, dst, kind = sys.argv[1], sys.argv[2], Q[sys.argv[3]]
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        if field.name == gguf.Keys.General.FILE_TYPE:
            # llama.cpp's LLAMA_FTYPE: 2 = mostly Q4_0, 7 = mostly Q8_0.
            writer.add_key_value(field.name, {Q.Q4_0: 2, Q.Q8_0: 7}[kind], value_type)
            continue
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    tensors = []
    for t in reader.tensors:
        if t.tensor_type == Q.Q4_1:
            weights = quants.dequantize(t.data, Q.Q4_1).astype(np.float32)
            tensors.append((t.name, quants.quantize(weights, kind), kind))
        else:
            tensors.append((t.name, t.data, t.tensor_type))
    for name, data, kind_of in tensors:
        # Quantized data is given by its byte shape, which the writer turns into elements.
        writer.add_tensor_info(name, data.shape, data.dtype, data.nbytes, kind_of)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, data, _ in tensors:
        writer.write_tensor_data(data)
    writer.close()


if __name__ == "__main__":
    main()
