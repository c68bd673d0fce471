"""The TF Model Garden (official.vision) adapter: the resnet_gc backbone, its
configs and checkpoint initialisation, the GC tasks and registered experiments.

Importing the package imports nothing of TensorFlow or official;
`import gc_detection.model_garden.registry` registers everything (the start-up
hook does it after official.vision.registry_imports).
"""
