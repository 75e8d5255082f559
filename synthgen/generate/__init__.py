"""Large-scale generation: the sampling plan, shard sampling, regeneration of single samples."""
