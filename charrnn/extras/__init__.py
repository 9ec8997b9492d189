"""Optional accelerators and scale-out: each behind one switch, tested equal to the core path,
falls back with one message where it cannot run.

- `fused_gru`: `FusedGRU`, the GRU with a faster CPU training loop (`TrainConfig.gru_kernel="fused"`).
- `cpp_loop`: the generator's step loop compiled for the CPU (`Generator(backend="cpp")`).
- `distribute`: the `tf.distribute` strategies (`TrainConfig.strategy`).
"""
