#ifndef CLIBXML2_SHIM_H
#define CLIBXML2_SHIM_H
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

/* xmlFree is a global function-pointer variable; Swift 6 refuses to read a
   mutable C global from concurrent code, so call it through a function. */
static inline void CLibXML2_free(void *p) { xmlFree(p); }
#endif
