"""Device specifics: one registry of devices, cpp_standalone (and cuda_standalone) builds,
and the brian2genn restatements of the networks.
"""
