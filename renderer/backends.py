"""The rasterizer backends a user can choose, by name, and what each is. Kept apart from
`render` (torch, numba) so a command line can offer them without loading either."""

# cpu: the fused numba rasterizer (cpu_backend); torch: its PyTorch twin (torch_backend)
BACKENDS = ("auto", "cpu", "torch", "gsplat")
BACKEND_HELP = ("auto: gsplat with a CUDA GPU, else cpu; cpu: the fused CPU rasterizer; torch: its slower "
                "PyTorch twin (same image); gsplat: CUDA")
