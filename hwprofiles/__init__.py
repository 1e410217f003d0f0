"""Hardware and model catalogue: validated GPU and model specs looked up by name."""

from hwprofiles.catalog import gpu, gpu_names, model, model_names
from hwprofiles.specs import GPUSpec, ModelSpec

__all__ = ["GPUSpec", "ModelSpec", "gpu", "gpu_names", "model", "model_names"]
