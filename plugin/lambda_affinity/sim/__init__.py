"""The platform model in virtual time: synthetic users (simulate.py), request traces and their replay
(trace.py), fitting the model to a trace (calibrate.py) and sweeps of one option (sweep.py, sweep_files.py).
Pure apart from reading and writing the files it is given."""
