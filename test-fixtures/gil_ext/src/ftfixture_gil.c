/* ftfixture_gil: single-phase init without PyUnstable_Module_SetGIL, so a
 * free-threaded interpreter re-enables the GIL when it imports this module
 * (unless PYTHON_GIL=0 forces it off). */
#include <Python.h>

static PyObject *
gil_answer(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(42);
}

static PyMethodDef module_functions[] = {
    {"answer", gil_answer, METH_NOARGS, "answer()\n--\n\nReturn 42."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ftfixture_gil",
    .m_doc = "Fixture that re-enables the GIL on import.",
    .m_size = -1,
    .m_methods = module_functions,
};

PyMODINIT_FUNC
PyInit_ftfixture_gil(void)
{
    return PyModule_Create(&module_def);
}
