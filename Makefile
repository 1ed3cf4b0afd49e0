# Conveniences over ./dev and svc-firmware; ./dev sets up .venv first.
PY ?= .venv/bin/python

.PHONY: image test demo
image:            ## compile the firmware image into build/image with mpy-cross
	./dev test --collect-only -q >/dev/null
	$(PY) -m fwtools.cli build --out build/image

test:
	./dev test

demo:
	./dev demo
