"""Models: registered encoders, linear late fusion, the multimodal model and its typed output."""

from mcr.models.encoders import ENCODERS, EncoderSpec
from mcr.models.multimodal import ModelConfig, ModelSpec, MultimodalModel
from mcr.models.outputs import ModelOutput

__all__ = ["ENCODERS", "EncoderSpec", "ModelConfig", "ModelOutput", "ModelSpec", "MultimodalModel"]
