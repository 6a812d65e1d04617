"""streambench.scenario"""
