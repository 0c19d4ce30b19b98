"""mmr-pipeline library: data, encoders, diffusion, training and metrics. No orchestration here."""
