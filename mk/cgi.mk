# The web endpoint: install for a web server, and run lighttpd or Apache in the foreground.
#   make deploy [PREFIX=/opt/crnnocr] [DESTDIR=staging]   install what the server (and the pool) runs
#   make serve [PORT=8080] [WORKER=0]         lighttpd on 127.0.0.1:$(PORT) (www/ + the OCR endpoint)
#   make serve-apache [PORT=8080] [WORKER=0]  the same with Apache
# By default the server speaks FastCGI to the worker pool (lighttpd spawns it; for Apache it runs
# beside it, as its systemd unit would); WORKER=0 serves the pure CGI, one process per request.
# Ctrl-C stops everything. The server's user (www-data when started as root) must be able to read
# the install, so serve installs a fresh copy under $(SERVE_ROOT)/<target> rather than serving the
# checkout: one per checkout and per target, so that two checkouts, or the two targets, never
# overwrite each other's running tree.

# PREFIX only from the command line: other fragments may give PREFIX a default of their own.
ifeq ($(origin PREFIX),command line)
DEPLOY_PREFIX := $(PREFIX)
else
DEPLOY_PREFIX ?= /opt/crnnocr
endif
PORT ?= 8080
WORKER ?= 1
SERVE_ROOT ?= /tmp/crnnocr-serve-$(shell printf '%s' "$(CURDIR)" | sha256sum | cut -c1-12)
SERVE_PATH := $(if $(filter 0,$(WORKER)),cgi,fastcgi)
DEPLOY := $(PY) -m deploy

.PHONY: deploy serve serve-apache

deploy:
	$(DEPLOY) install --prefix $(DEPLOY_PREFIX) $(if $(DESTDIR),--destdir $(DESTDIR))

serve:
	$(DEPLOY) install --prefix $(SERVE_ROOT)/lighttpd
	$(DEPLOY) serve lighttpd --prefix $(SERVE_ROOT)/lighttpd --port $(PORT) --path $(SERVE_PATH)

serve-apache:
	$(DEPLOY) install --prefix $(SERVE_ROOT)/apache
	$(DEPLOY) serve apache --prefix $(SERVE_ROOT)/apache --port $(PORT) --path $(SERVE_PATH)
