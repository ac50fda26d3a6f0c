"""The storyboard: projects, scenes, shots, their image iterations, and the workflow status."""
