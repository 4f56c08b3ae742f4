/* conio.h for objmgr: _getch reads one byte from standard input. */
#ifndef OBJMGR_CONIO_H
#define OBJMGR_CONIO_H
#ifdef __cplusplus
extern "C" {
#endif
int _getch(void);
#ifdef __cplusplus
}
#endif
#endif /* OBJMGR_CONIO_H */
