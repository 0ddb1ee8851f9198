# CGI endpoint: install for a web server, and run lighttpd or Apache in the foreground.
#   make deploy [PREFIX=/opt/crnnocr] [DESTDIR=staging]   install what the server runs
#   make serve [PORT=8080]          lighttpd on 127.0.0.1:$(PORT) (www/ + cgi-bin/), Ctrl-C stops
#   make serve-apache [PORT=8080]   the same with Apache
# The server's user (www-data when started as root) must be able to read the install, so serve
# installs a fresh copy under $(SERVE_PREFIX) rather than serving the checkout.

# PREFIX only from the command line: other fragments may give PREFIX a default of their own.
ifeq ($(origin PREFIX),command line)
DEPLOY_PREFIX := $(PREFIX)
else
DEPLOY_PREFIX ?= /opt/crnnocr
endif
PORT ?= 8080
SERVE_PREFIX ?= /tmp/crnnocr-serve
DEPLOYTOOL := $(PY) deploy/deploytool.py

.PHONY: deploy serve serve-apache

deploy:
	$(DEPLOYTOOL) install --prefix $(DEPLOY_PREFIX) $(if $(DESTDIR),--destdir $(DESTDIR))

serve:
	$(DEPLOYTOOL) install --prefix $(SERVE_PREFIX)
	$(DEPLOYTOOL) serve lighttpd --prefix $(SERVE_PREFIX) --port $(PORT) \
		--run-dir $(SERVE_PREFIX)/run-lighttpd --error-log /dev/stderr

serve-apache:
	$(DEPLOYTOOL) install --prefix $(SERVE_PREFIX)
	$(DEPLOYTOOL) serve apache --prefix $(SERVE_PREFIX) --port $(PORT) \
		--run-dir $(SERVE_PREFIX)/run-apache --error-log /dev/stderr
