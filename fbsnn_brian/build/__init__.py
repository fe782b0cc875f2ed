"""The only layer that writes Brian2 equation strings: neuron templates, free-run and
training builds, and the devices they compile for (:mod:`fbsnn_brian.build.devices`).
"""
