#ifndef CLIBXML2_SHIM_H
#define CLIBXML2_SHIM_H
/* Debian's libxml2 is built with ICU, and its encoding.h then includes the
   system's <unicode/ucnv.h>, whose UErrorCode clashes with the ICU copy
   Foundation brings (_FoundationICU) in any module that sees both. hostdevd
   never touches the ICU-specific encoding handler fields, so the ICU part of
   the headers is left out. */
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

/* xmlFree is a global function-pointer variable; Swift 6 refuses to read a
   mutable C global from concurrent code, so call it through a function. */
static inline void CLibXML2_free(void *p) { xmlFree(p); }
#endif
