"""What both runners share: the execution core, the run lifecycle, counters and signals.

The in-process runner (:mod:`runner.local`) and the Kafka runner (:mod:`runner.kafka`)
move encoded :class:`~runner.runtime.messages.Message` values between topics; everything
between receiving a batch and handing back its outputs and dead letters happens here.
"""
