"""Keep one core busy."""

x = 0
while True:
    x += 1
