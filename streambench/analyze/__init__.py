"""streambench.analyze"""
