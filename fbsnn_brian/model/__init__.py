"""Descriptions: the network, its biophysics, phases, protocol and plasticity settings.

Nothing here builds or runs a simulation; the build layer (:mod:`fbsnn_brian.build`) does.
"""
