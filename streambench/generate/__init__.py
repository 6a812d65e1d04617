"""streambench.generate"""
