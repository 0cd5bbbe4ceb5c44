"""Renderer: Gaussian sets, PLY I/O, binding to triangles, cameras, SH, gsplat and CPU backends."""
