"""Imitation learning: datasets, chunk policies (CARP, diffusion, MLP), training and evaluation."""
from robot_ctrl.learning.base import (MODELS, CheckpointError, Chunk, ChunkModel, Normalizer, Policy,  # noqa: F401
                                      PolicySpec, load_policy, register)
from robot_ctrl.learning import carp, diffusion, mlp  # noqa: F401,E402  (registers the models)
