"""pytorch/examples' ``neural_style.py eval`` path, for bench_apply.py: one photo in, one PNG out.

    python benchmarks/_torch_eval.py MODEL.pth PHOTO OUT.png

What its ``stylize()`` does for a content image (fast_neural_style, no ONNX,
CPU): load with PIL, ``ToTensor`` then ``mul(255)`` (written here with NumPy:
torchvision is not installed), build TransformerNet, load the state dict
(dropping the legacy InstanceNorm ``running_*`` keys), forward under
``no_grad``, clamp to 0-255 and save with PIL. The network is the example's
TransformerNet as tests/fixtures/make_transformer_fixture.py transcribes it.
The caller times the whole process, as a user meets it.
"""

import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
from make_transformer_fixture import TransformerNet  # noqa: E402


def main():
  model, photo, out = sys.argv[1:4]
  rgb = np.asarray(Image.open(photo).convert("RGB"), np.float32)
  content = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)  # ToTensor() * 255.
  with torch.no_grad():
    net = TransformerNet(1.0)
    state = torch.load(model)
    for key in list(state):
      if re.search(r"in\d+\.running_(mean|var)$", key):
        del state[key]
    net.load_state_dict(state)
    output = net(content).cpu()
  img = output[0].clone().clamp(0, 255).numpy().transpose(1, 2, 0).astype("uint8")
  Image.fromarray(img).save(out)


if __name__ == "__main__":
  main()
