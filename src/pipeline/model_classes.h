/* Which component classes a pipeline runs: model_index.json naming another
 * class (a swapped or unknown component) is refused before anything loads,
 * instead of being run as if it were the class ferry implements. */
#ifndef FERRY_PIPELINE_MODEL_CLASSES_H
#define FERRY_PIPELINE_MODEL_CLASSES_H

#include "ferry/model.h"

/* Every component the folder names against the table row of its pipeline
 * class; one line naming model_index.json, the key and the classes accepted. */
fy_status fy_model_check_classes(const fy_model *m);

#endif
