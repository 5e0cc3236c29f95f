#ifndef PLAYHEAD_CRDKAFKA_SHIM_H
#define PLAYHEAD_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif
