# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed_bytes.cmake
# Writes OUT defining `const unsigned char NAME[]` (IN's bytes) and
# `const size_t NAME_len`: how ttc carries the run-time weights loader's
# LLVM bitcode (compiler/jit/aot_loader.c, aot_weights.c).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* generated from ${IN} by cmake/embed_bytes.cmake */\n#include <stddef.h>\n"
     "const unsigned char ${NAME}[] = {\n${body}\n};\nconst size_t ${NAME}_len = ${bytes};\n")
