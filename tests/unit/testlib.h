/*
 * testlib - what every cmocka unit test includes: cmocka itself, and a
 * way to assert that code calls msg_fatal() without ending the test.
 */
#ifndef TERN_TESTLIB_H
#define TERN_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "log.h"

static jmp_buf testlib_fatal_jmp;
static char testlib_fatal_text[4096];

static void __attribute__((unused))
testlib_fatal_hook(const char *text)
{
	snprintf(testlib_fatal_text, sizeof(testlib_fatal_text), "%s", text);
	longjmp(testlib_fatal_jmp, 1);
}

/* Run stmt; true when it called msg_fatal (text in testlib_fatal_text). */
#define CALLS_FATAL(stmt) (__extension__ ({				\
	int fatal_ = 0;							\
	log_set_fatal_hook(testlib_fatal_hook);				\
	if (setjmp(testlib_fatal_jmp) == 0) {				\
		stmt;							\
	} else								\
		fatal_ = 1;						\
	log_set_fatal_hook(NULL);					\
	fatal_;								\
}))

#endif
