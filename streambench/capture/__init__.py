"""streambench.capture"""
